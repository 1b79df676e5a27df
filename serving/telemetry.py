"""The gateway's links to the collector: batched OTLP/HTTP span export, engine registration."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.request

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from serving.otlp import OTLPHTTPSpanExporter

SERVICE_NAME = "inferwatch-gateway"
REGISTER_TIMEOUT_S = 5.0


def tracer_provider(collector_url: str, *, service_name: str = SERVICE_NAME) -> TracerProvider:
    """A provider exporting to ``collector_url``; call ``shutdown()`` to flush at exit."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPHTTPSpanExporter(f"{collector_url.rstrip('/')}/v1/traces")
    # Small, frequent batches: the export thread holds the GIL while it encodes (about 30 µs
    # a span here, see serving/otlp.py), so a default 512-span batch would stall the gateway's
    # event loop for over 10 ms, 64 for under 2. Spans also reach the collector within half a
    # second.
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=500, max_export_batch_size=64)
    provider.add_span_processor(processor)
    return provider


def register_engine(collector_url: str, url: str, *, name: str, pid: int | None) -> str | None:
    """Asks the collector to scrape the vLLM at ``url`` (``PUT /v1/engines``).

    Returns None once registered, else why not: a collector that is not up yet
    does not stop serving (register later with the same call, or with curl)."""
    body = {"url": url, "name": name, "pid": pid, "host": socket.gethostname()}
    request = urllib.request.Request(
        f"{collector_url.rstrip('/')}/v1/engines",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="PUT",
    )
    try:
        with urllib.request.urlopen(request, timeout=REGISTER_TIMEOUT_S):
            return None
    except (OSError, http.client.HTTPException) as exc:
        return str(exc)
