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
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
