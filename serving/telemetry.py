"""The gateway's OpenTelemetry pipeline: batched OTLP/HTTP export to the collector."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE_NAME = "inferwatch-gateway"


def tracer_provider(collector_url: str, *, service_name: str = SERVICE_NAME) -> TracerProvider:
    """A provider exporting to ``collector_url``; call ``shutdown()`` to flush at exit."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter = OTLPSpanExporter(endpoint=f"{collector_url.rstrip('/')}/v1/traces")
    # Small, frequent batches. The SDK's encoder is pure Python (about 110 µs a span here) and
    # its export thread holds the GIL meanwhile: a default 512-span batch would stall the
    # gateway's event loop for tens of milliseconds, 64 for a few. Spans also reach the
    # collector within half a second.
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=500, max_export_batch_size=64)
    provider.add_span_processor(processor)
    return provider
