"""Durable OTLP ingest throughput: vLLM-shaped batches posted to a collector.

    python -m bench.ingest                      # starts its own collector (embedded Postgres)
    python -m bench.ingest --url http://127.0.0.1:4318 --database-url postgresql://...

Each batch holds ``--traces`` traces of two spans (gateway CLIENT span + vLLM
``llm_request`` child), as the OTel SDK's batch processor sends them (512
spans). Bodies are built before the clock starts. A span counts only once the
collector has answered 200 (which it does after commit) and ``count(*)`` over
``spans`` shows it: the figure is durable spans per second.

Also printed: CPU seconds used by the collector, Postgres and this load
generator during the run, and the per-span cost of each collector stage
measured in this process (decode+map, write), so the total can be explained.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import psycopg

from bench.ports import cpu_seconds
from collector import synthetic
from collector.decode import decode_protobuf
from collector.writer import prepare_connection, write_rows
from inferwatch.store.database import libpq_url

T0 = 1_763_700_000_000_000_000


@dataclass
class Run:
    spans: int
    seconds: float
    statuses: dict[int, int]


def build_bodies(batches: int, traces: int, seed: int, compress: bool) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for b in range(batches):
        reqs = synthetic.random_requests(
            traces, seed=rng, start_ns=T0 + b * traces * 1_000_000, spacing_ns=1_000_000
        )
        body = synthetic.export_request(reqs).SerializeToString()
        bodies.append(gzip.compress(body, 1) if compress else body)
    return bodies


async def post_all(url: str, bodies: list[bytes], concurrency: int, compress: bool) -> Run:
    headers = {"Content-Type": "application/x-protobuf"}
    if compress:
        headers["Content-Encoding"] = "gzip"
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    response = await client.post("/v1/traces", content=body, headers=headers)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code == 200:
                        break
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Run(spans=0, seconds=elapsed, statuses=statuses)


def count_spans(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM spans").fetchone()
    assert row is not None
    return int(row[0])


def postgres_processes(database_url: str) -> list[psutil.Process]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postmaster = psutil.Process(int(row[0])).parent()  # while our backend still exists
    assert postmaster is not None
    return [postmaster, *postmaster.children()]


def stage_costs(database_url: str | None, body: bytes, spans: int) -> tuple[float, float | None]:
    """µs per span to decode+map one batch, and to write it (COPY + commit, client wall).

    The write is measured only on the benchmark's own throwaway database
    (``database_url`` set), with fresh trace ids, so no one's data is touched.
    """
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        rows = decode_protobuf(body).rows
    decode_us = (time.perf_counter() - started) / (rounds * spans) * 1e6
    if database_url is None:
        return decode_us, None
    url = database_url

    async def write() -> float:
        conn = await psycopg.AsyncConnection.connect(libpq_url(url))
        await prepare_connection(conn)
        batches = [
            [r._replace(trace_id=f"{0xBE9C << 100 | k << 32 | i:032x}") for i, r in enumerate(rows)]
            for k in range(rounds)
        ]
        t0 = time.perf_counter()
        for batch in batches:
            await write_rows(conn, batch)
        elapsed = time.perf_counter() - t0
        await conn.close()
        return elapsed / (rounds * spans) * 1e6

    return decode_us, asyncio.run(write())


def start_collector(home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INFERWATCH_HOME": str(home), "INFERWATCH_LOG_LEVEL": "WARNING"}
    env.pop("INFERWATCH_DATABASE_URL", None)
    cli = [sys.executable, "-m", "inferwatch.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        [*cli, "collector", "--port", str(port), "--workers", str(workers)], env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("collector did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running collector (default: start one)")
    parser.add_argument("--database-url", help="its database (needed with --url)")
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--traces", type=int, default=256, help="traces per batch (2 spans each)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--gzip", action="store_true", help="gzip request bodies")
    parser.add_argument("--port", type=int, default=14318)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="collector worker processes when the bench starts its own",
    )
    args = parser.parse_args()

    own: subprocess.Popen[bytes] | None = None
    tmp = None
    if args.url is None:
        tmp = tempfile.TemporaryDirectory(prefix="inferwatch-bench-")
        own = start_collector(Path(tmp.name), args.port, args.workers)
        url = f"http://127.0.0.1:{args.port}"
        db_url = subprocess.run(
            [sys.executable, "-m", "inferwatch.cli", "db", "url"],
            check=True,
            text=True,
            capture_output=True,
            env={**os.environ, "INFERWATCH_HOME": tmp.name},
        ).stdout.strip()
    else:
        if not args.database_url:
            raise SystemExit("--database-url is needed with --url")
        url, db_url = args.url, args.database_url

    try:
        spans_per_batch = args.traces * 2
        print(f"building {args.batches} batches x {spans_per_batch} spans ...", flush=True)
        bodies = build_bodies(args.batches, args.traces, seed=42, compress=args.gzip)
        warmup = build_bodies(4, args.traces, seed=7, compress=args.gzip)
        asyncio.run(post_all(url, warmup, 2, args.gzip))
        before = count_spans(db_url)

        collector_procs: list[psutil.Process] = []
        if own is not None:
            parent = psutil.Process(own.pid)
            collector_procs = [
                p for p in [parent, *parent.children(recursive=True)] if p.name() != "postgres"
            ]  # pg_ctl may leave it in the tree
        watched = collector_procs + postgres_processes(db_url)
        me = psutil.Process()
        cpu_before = {p.pid: cpu_seconds([p]) for p in watched}
        me_before = cpu_seconds([me])
        run = asyncio.run(post_all(url, bodies, args.concurrency, args.gzip))
        stored = count_spans(db_url) - before
        cpu_used = {p.pid: cpu_seconds([p]) - cpu_before[p.pid] for p in watched}
        me_used = cpu_seconds([me]) - me_before

        expected = args.batches * spans_per_batch
        print(f"\nspans sent:            {expected}")
        print(f"spans durable:         {stored}  (count(*) after all 200s)")
        print(f"responses:             {dict(sorted(run.statuses.items()))}")
        print(f"wall time:             {run.seconds:.2f} s")
        print(
            f"durable throughput:    {stored / run.seconds:,.0f} spans/s "
            f"({stored / 2 / run.seconds:,.0f} LLM requests/s)"
        )
        collector_cpu = sum(cpu_used[p.pid] for p in watched[: len(collector_procs)])
        postgres_cpu = sum(
            v for pid, v in cpu_used.items() if pid not in {p.pid for p in collector_procs}
        )
        print(
            f"\nCPU seconds during the run (2 cores => at most {2 * run.seconds:.1f} s available):"
        )
        if collector_procs:
            print(
                f"  collector ({len(collector_procs)} procs): {collector_cpu:6.2f} s "
                f"({collector_cpu / stored * 1e6:.1f} µs/span)"
            )
        print(
            f"  postgres (all):      {postgres_cpu:6.2f} s "
            f"({postgres_cpu / stored * 1e6:.1f} µs/span)"
        )
        print(f"  load generator:      {me_used:6.2f} s")
        raw = gzip.decompress(bodies[0]) if args.gzip else bodies[0]
        decode_us, write_us = stage_costs(db_url if own is not None else None, raw, spans_per_batch)
        print("\nper-span stage costs, measured alone in this process:")
        print(f"  decode + map:        {decode_us:6.1f} µs/span")
        if write_us is not None:
            print(f"  write (COPY + commit, client wall): {write_us:6.1f} µs/span")
        if stored != expected:
            raise SystemExit(f"only {stored} of {expected} spans are stored")
    finally:
        if own is not None:
            own.send_signal(signal.SIGTERM)
            own.wait(timeout=60)
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
