"""The gateway's span export against the OTel SDK's, on the gateway's own spans.

    python -m bench.span_encoding [--requests 256] [--repeat 20]

Runs the real gateway (in this process, capture and redaction on) in front of
the fast upstream of ``bench/gateway_overhead.py``, keeps the spans it makes,
then exports them in the gateway's batches of 64 both ways, alternating:
encoding alone, and a whole export (encode and POST to a loopback OTLP sink).
Reported: CPU time of the exporting thread per span and per batch, which is
the time the gateway's event loop can be kept waiting for the GIL.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Sequence

import httpx
import uvicorn
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.gateway_overhead import upstream_app, workload
from bench.ports import free_port, wait_ready
from inferwatch.settings import ServingSettings
from serving.gateway import create_gateway
from serving.otlp import OTLPHTTPSpanExporter, encode_spans
from serving.telemetry import SERVICE_NAME

BATCH = 64  # the gateway's max_export_batch_size (serving/telemetry.py)


def serve_in_thread(app: object) -> str:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
    return f"http://127.0.0.1:{port}"


def gateway_spans(requests: int) -> tuple[list[ReadableSpan], str]:
    """Spans of ``requests`` streamed chats through the gateway, and the upstream's URL."""
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    upstream = serve_in_thread(upstream_app(48, 0.0, 0.0))
    wait_ready(f"{upstream}/health")
    settings = ServingSettings(upstream_url=upstream, collector_url=upstream, capture="all")
    gateway = serve_in_thread(create_gateway(settings, provider))
    wait_ready(f"{gateway}/healthz")
    with httpx.Client(base_url=gateway, timeout=30) as client:
        for body in workload(requests, 32, lockstep=False):
            with client.stream("POST", "/v1/chat/completions", content=body) as response:
                response.read()
    return list(kept.get_finished_spans()), upstream


Export = Callable[[Sequence[ReadableSpan]], object]


def cpu_per_call(call: Export, batches: list[list[ReadableSpan]]) -> float:
    """Seconds of this thread's CPU per batch, over all batches."""
    started = time.thread_time()
    for batch in batches:
        call(batch)
    return (time.thread_time() - started) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=20, help="alternating rounds of each")
    args = parser.parse_args()

    spans, upstream = gateway_spans(args.requests)
    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    identical = all(encode_spans(b) == sdk_encode(b).SerializePartialToString() for b in batches)
    sink = f"{upstream}/v1/traces"
    sdk_exporter, ours_exporter = OTLPSpanExporter(endpoint=sink), OTLPHTTPSpanExporter(sink)
    ways: dict[str, dict[str, Export]] = {
        "OTel SDK": {
            "encode": lambda b: sdk_encode(b).SerializePartialToString(),
            "export": sdk_exporter.export,
        },
        "serving.otlp": {"encode": encode_spans, "export": ours_exporter.export},
    }
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for way, steps in ways.items():
            for step, call in steps.items():
                seconds.setdefault((way, step), []).append(cpu_per_call(call, batches))

    attributes = statistics.mean(len(s.attributes or {}) for s in spans)
    print(
        f"{len(spans)} gateway spans ({attributes:.0f} attributes each, text captured), "
        f"batches of {BATCH}, {args.repeat} alternating rounds; median CPU of the exporting "
        f"thread; identical bytes: {'yes' if identical else 'NO'}\n"
    )
    print(f"{'':13s} {'encode µs/span':>15s} {'export ms/batch':>16s}")
    for way in ways:
        encode = statistics.median(seconds[(way, "encode")]) / BATCH * 1e6
        export = statistics.median(seconds[(way, "export")]) * 1e3
        print(f"{way:13s} {encode:15.1f} {export:16.2f}")
    ratio = {
        step: statistics.median(seconds[("OTel SDK", step)])
        / statistics.median(seconds[("serving.otlp", step)])
        for step in ("encode", "export")
    }
    print(
        f"\nserving.otlp is {ratio['encode']:.1f}x cheaper to encode, "
        f"{ratio['export']:.1f}x for a whole export"
    )


if __name__ == "__main__":
    main()
