"""What the gateway adds: the same streaming workload sent directly to an upstream and through it.

    python -m bench.gateway_overhead [--concurrency 64] [--requests 2000] [--rounds 4]
                                     [--no-pin] [--lockstep]

Three processes: a fast OpenAI-style upstream that streams ``max_tokens``
chunks after ``--ttft-ms`` with ``--token-ms`` between them (a model's pacing,
without a model) and also accepts OTLP so the gateway's span export is real
work; the gateway (capture, redaction and log-probabilities on); and this load
generator (aiohttp: its own cost must not hide the gateway's). Rounds alternate
direct and gateway so both see the same machine. Reported: TTFT and total
latency percentiles for each, the difference at p50/p99, the throughput
ratio, and the gateway's CPU time per request with how busy that kept its CPU
(the closer to 100 %, the more every request queues behind the others there).

The workload: ``--concurrency`` closed-loop clients whose requests ask for
between half and one and a half times ``--tokens`` tokens (the same seeded
sequence in both modes), started spread over one request's duration, as real
traffic arrives. ``--lockstep`` gives every request the same length and starts
all clients at once: every request then reaches the gateway in bursts of
``--concurrency`` at the same instant, the worst case for any proxy.

With two or more CPUs the gateway gets a CPU of its own and the load generator
and upstream share another (``--no-pin`` leaves placement to the OS). That is
how it runs in production, beside a model that does not compute on its core;
unpinned on a small machine, the figures measure three processes competing for
CPUs as much as the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import psutil
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bench.ports import cpu_seconds, free_port, wait_ready


def upstream_app(max_tokens: int, ttft_s: float, token_s: float) -> Starlette:
    def chunk(text: str, finish: str | None = None) -> bytes:
        return (
            b"data: "
            + orjson.dumps(
                {
                    "id": "chatcmpl-b",
                    "object": "chat.completion.chunk",
                    "model": "bench",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": text} if text else {},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                }
            )
            + b"\n\n"
        )

    def usage(tokens: int) -> bytes:
        counts = {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
        return (
            b"data: " + orjson.dumps({"id": "chatcmpl-b", "choices": [], "usage": counts}) + b"\n\n"
        )

    words = [chunk(f"tok{i} ") for i in range(max_tokens)]
    tail = chunk("", "stop")

    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        tokens = min(int(body.get("max_tokens") or max_tokens), max_tokens)

        async def stream() -> AsyncIterator[bytes]:
            await asyncio.sleep(ttft_s)
            for i, word in enumerate(words[:tokens]):
                if i:
                    await asyncio.sleep(token_s)
                yield word
            yield tail
            if include_usage:
                yield usage(tokens)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def sink(request: Request) -> Response:  # OTLP/HTTP: accept and drop
        await request.body()
        return Response(b"", media_type="application/x-protobuf")

    async def health(request: Request) -> Response:
        return Response(b"")

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/traces", sink, methods=["POST"]),
            Route("/health", health),
            Route("/readyz", health),
        ]
    )


def serve(
    role: str, port: int, upstream: str, tokens: int, ttft_ms: float, token_ms: float
) -> None:
    import uvicorn

    app: Any
    if role == "upstream":
        app = upstream_app(2 * tokens, ttft_ms / 1000, token_ms / 1000)
    else:
        from inferwatch.heap import freeze_startup_heap
        from inferwatch.settings import ServingSettings
        from serving.gateway import create_gateway
        from serving.telemetry import tracer_provider

        settings = ServingSettings(upstream_url=upstream, collector_url=upstream)
        app = create_gateway(settings, tracer_provider(upstream))
        freeze_startup_heap()  # as `inferwatch serve` does
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


@dataclass
class Round:
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0


def workload(requests: int, tokens: int, lockstep: bool) -> list[bytes]:
    """The request bodies, in order: the same for every mode and round."""
    rng = random.Random(42)
    return [
        orjson.dumps(
            {
                "model": "bench",
                "stream": True,
                "max_tokens": tokens if lockstep else rng.randint(tokens // 2, tokens * 3 // 2),
                "messages": [{"role": "user", "content": "Count for me, bob@example.com."}],
            }
        )
        for _ in range(requests)
    ]


async def run_round(url: str, bodies: list[bytes], concurrency: int, stagger_s: float) -> Round:
    result = Round()
    remaining = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def worker(delay: float) -> None:
            await asyncio.sleep(delay)
            for body in remaining:
                started = time.perf_counter()
                first = None
                try:
                    async with session.post(
                        "/v1/chat/completions",
                        data=body,
                        headers={"content-type": "application/json"},
                    ) as r:
                        if r.status != 200:
                            result.errors += 1
                            await r.read()
                            continue
                        async for chunk in r.content.iter_any():
                            if first is None and b'"content"' in chunk:
                                first = time.perf_counter()
                except (aiohttp.ClientError, TimeoutError):
                    result.errors += 1
                    continue
                end = time.perf_counter()
                result.ttft.append((first or end) - started)
                result.total.append(end - started)

        t0 = time.perf_counter()
        delays = [stagger_s * i / concurrency for i in range(concurrency)]
        await asyncio.gather(*(worker(delay) for delay in delays))
        result.seconds = time.perf_counter() - t0
    return result


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000, help="per mode, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--token-ms", type=float, default=10.0)
    parser.add_argument("--lockstep", action="store_true", help="equal requests, all at once")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place the processes")
    parser.add_argument("--role", choices=["upstream", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        serve(args.role, args.port, args.upstream, args.tokens, args.ttft_ms, args.token_ms)
        return

    up_port, gw_port = free_port(), free_port()
    me = [
        sys.executable,
        "-m",
        "bench.gateway_overhead",
        "--tokens",
        str(args.tokens),
        "--ttft-ms",
        str(args.ttft_ms),
        "--token-ms",
        str(args.token_ms),
    ]
    env = {**os.environ, "INFERWATCH_LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([*me, "--role", "upstream", "--port", str(up_port)], env=env)]
    procs.append(
        subprocess.Popen(
            [
                *me,
                "--role",
                "gateway",
                "--port",
                str(gw_port),
                "--upstream",
                f"http://127.0.0.1:{up_port}",
            ],
            env=env,
        )
    )
    pinned = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    if pinned:
        first, second, *_ = sorted(os.sched_getaffinity(0))
        for pid in (0, procs[0].pid):  # this load generator and the upstream
            os.sched_setaffinity(pid, {first})
        os.sched_setaffinity(procs[1].pid, {second})
    try:
        direct_url, gateway_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
        wait_ready(f"{direct_url}/health")
        wait_ready(f"{gateway_url}/healthz")
        bodies = workload(args.requests // args.rounds, args.tokens, args.lockstep)
        stagger_s = 0 if args.lockstep else (args.ttft_ms + args.tokens * args.token_ms) / 1000
        warm_up = bodies[: args.concurrency]
        asyncio.run(run_round(gateway_url, warm_up, args.concurrency, stagger_s))
        modes = {"direct": Round(), "gateway": Round()}
        gateway, gateway_cpu = [psutil.Process(procs[1].pid)], 0.0
        for _ in range(args.rounds):
            for name, url in (("direct", direct_url), ("gateway", gateway_url)):
                cpu_before = cpu_seconds(gateway)
                r = asyncio.run(run_round(url, bodies, args.concurrency, stagger_s))
                if name == "gateway":
                    gateway_cpu += cpu_seconds(gateway) - cpu_before
                modes[name].ttft += r.ttft
                modes[name].total += r.total
                modes[name].seconds += r.seconds
                modes[name].errors += r.errors
        shape = (
            f"in lockstep, {args.tokens} tokens"
            if args.lockstep
            else f"{args.tokens // 2}-{args.tokens * 3 // 2} tokens"
        )
        print(
            f"{len(bodies) * args.rounds} streamed requests per mode, {args.concurrency} "
            f"concurrent, {shape}, TTFT {args.ttft_ms:g} ms, {args.token_ms:g} ms/token; "
            f"{args.rounds} alternating rounds; "
            f"{'gateway on its own CPU' if pinned else 'unpinned'}\n"
        )
        print(
            f"{'':9s} {'TTFT p50':>9s} {'TTFT p99':>9s} {'total p50':>10s} {'total p99':>10s}"
            f" {'req/s':>8s} {'errors':>6s}"
        )
        for name, r in modes.items():
            print(
                f"{name:9s} {pct(r.ttft, 0.5) * 1e3:8.2f}ms {pct(r.ttft, 0.99) * 1e3:8.2f}ms "
                f"{pct(r.total, 0.5) * 1e3:9.2f}ms {pct(r.total, 0.99) * 1e3:9.2f}ms "
                f"{len(r.total) / r.seconds:8.1f} {r.errors:6d}"
            )
        d, g = modes["direct"], modes["gateway"]
        print(
            "\nadded by the gateway: "
            f"TTFT p50 {(pct(g.ttft, 0.5) - pct(d.ttft, 0.5)) * 1e3:+.2f} ms,"
            f" p99 {(pct(g.ttft, 0.99) - pct(d.ttft, 0.99)) * 1e3:+.2f} ms; "
            f"total p50 {(pct(g.total, 0.5) - pct(d.total, 0.5)) * 1e3:+.2f} ms, "
            f"p99 {(pct(g.total, 0.99) - pct(d.total, 0.99)) * 1e3:+.2f} ms"
        )
        ratio = (len(g.total) / g.seconds) / (len(d.total) / d.seconds)
        print(f"throughput through the gateway: {ratio * 100:.1f}% of direct")
        print(
            f"gateway CPU: {gateway_cpu / len(g.total) * 1e3:.2f} ms a request; "
            f"its CPU was {gateway_cpu / g.seconds * 100:.0f}% busy during its rounds"
        )
    finally:
        for proc in reversed(procs):  # the gateway first: it flushes spans to the upstream
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
