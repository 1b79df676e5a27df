"""The gateway's span exporter: OTLP/HTTP protobuf, the OTel SDK's bytes for a third of its CPU.

Why not the SDK's ``OTLPSpanExporter``: its encoder builds every attribute as a
protobuf message of its own and then copies them all into their parents, about
85 µs a gateway span on the bench machine. Its batch thread holds the GIL all
that time, and on the gateway's one core that burst (over 5 ms for 64 spans) is
what requests arriving during an export wait behind: the event loop's worst
stalls and most of the gateway's p99 (``bench/gateway_overhead.py``). Writing
each field in place into one request message gives the same bytes for about
30 µs a span (``bench/span_encoding.py``; ``tests/serving/test_otlp.py`` checks
the bytes against the SDK's on spans that use every field).

Sent with urllib3 (what ``requests`` is built on, at half its CPU a post): one
kept-alive connection, retried with backoff on connection errors and on the
statuses OTLP/HTTP calls retryable (429, 502, 503, 504).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import urllib3
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, SpanFlags
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import SpanContext, SpanKind
from urllib3.util import Retry

_logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = (429, 502, 503, 504)
_HEADERS = {"Content-Type": "application/x-protobuf"}
_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_KINDS = {
    SpanKind.INTERNAL: Span.SPAN_KIND_INTERNAL,
    SpanKind.SERVER: Span.SPAN_KIND_SERVER,
    SpanKind.CLIENT: Span.SPAN_KIND_CLIENT,
    SpanKind.PRODUCER: Span.SPAN_KIND_PRODUCER,
    SpanKind.CONSUMER: Span.SPAN_KIND_CONSUMER,
}


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``, serialized: spans grouped by resource, then scope."""
    request = ExportTraceServiceRequest()
    resources: list[tuple[Resource, ResourceSpans, dict[SdkScope | None, ScopeSpans]]] = []
    for span in spans:
        resource = span.resource
        entry = next((e for e in resources if e[0] is resource or e[0] == resource), None)
        if entry is None:
            resource_spans = request.resource_spans.add()
            _put_attributes(resource_spans.resource.attributes, resource.attributes)
            if resource.schema_url:
                resource_spans.schema_url = resource.schema_url
            entry = (resource, resource_spans, {})
            resources.append(entry)
        _, resource_spans, scopes = entry
        scope = span.instrumentation_scope or None
        scope_spans = scopes.get(scope)
        if scope_spans is None:
            scope_spans = scopes[scope] = resource_spans.scope_spans.add()
            _put_scope(scope_spans, scope)
        _put_span(scope_spans.spans.add(), span)
    return request.SerializePartialToString()


def _put_scope(scope_spans: ScopeSpans, scope: SdkScope | None) -> None:
    message: InstrumentationScope = scope_spans.scope
    message.SetInParent()
    if scope is None:
        return
    message.name = scope.name
    if scope.version:
        message.version = scope.version
    _put_attributes(message.attributes, scope.attributes)
    if scope.schema_url:
        scope_spans.schema_url = scope.schema_url


def _put_span(message: Span, span: ReadableSpan) -> None:
    context = span.get_span_context()
    assert context is not None  # a span the SDK finished always has one
    message.trace_id = context.trace_id.to_bytes(16, "big")
    message.span_id = context.span_id.to_bytes(8, "big")
    if context.trace_state:
        message.trace_state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
    if span.parent:
        message.parent_span_id = span.parent.span_id.to_bytes(8, "big")
    message.name = span.name
    message.kind = _KINDS[span.kind]
    if span.start_time is not None:
        message.start_time_unix_nano = span.start_time
    if span.end_time is not None:
        message.end_time_unix_nano = span.end_time
    _put_attributes(message.attributes, span.attributes)
    for event in span.events:
        encoded_event = message.events.add()
        encoded_event.name = event.name
        encoded_event.time_unix_nano = event.timestamp
        _put_attributes(encoded_event.attributes, event.attributes)
        encoded_event.dropped_attributes_count = event.dropped_attributes
    for link in span.links:
        encoded_link = message.links.add()
        encoded_link.trace_id = link.context.trace_id.to_bytes(16, "big")
        encoded_link.span_id = link.context.span_id.to_bytes(8, "big")
        _put_attributes(encoded_link.attributes, link.attributes)
        encoded_link.dropped_attributes_count = link.dropped_attributes
        encoded_link.flags = _flags(link.context)
    message.status.code = span.status.status_code.value  # type: ignore[assignment]
    if span.status.description:
        message.status.message = span.status.description
    message.dropped_attributes_count = span.dropped_attributes  # a 0 is not serialized
    message.dropped_events_count = span.dropped_events
    message.dropped_links_count = span.dropped_links
    message.flags = _flags(span.parent)


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


def _put_attributes(target: Any, attributes: Mapping[str, Any] | None) -> None:
    """Appends ``KeyValue``s to a repeated field; a value OTLP cannot carry is left out, logged."""
    if not attributes:
        return
    add = target.add
    for key, value in attributes.items():
        pair: KeyValue = add()
        pair.key = key
        try:
            _put_value(pair.value, value)
        except (TypeError, ValueError) as exc:  # e.g. an int over 64 bits
            del target[-1]
            _logger.warning("span attribute %r left out: %s", key, exc)


def _put_value(message: AnyValue, value: Any) -> None:
    # the SDK's order: bool before int (a bool is an int), str and bytes before Sequence
    if value is None:
        message.SetInParent()
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, int):
        message.int_value = value
    elif isinstance(value, float):
        message.double_value = value
    elif isinstance(value, bytes):
        message.bytes_value = value
    elif isinstance(value, Sequence):
        message.array_value.SetInParent()
        values = message.array_value.values
        for item in value:
            _put_value(values.add(), item)
    elif isinstance(value, Mapping):
        message.kvlist_value.SetInParent()
        pairs = message.kvlist_value.values
        for key, item in value.items():
            pair = pairs.add()
            pair.key = str(key)
            _put_value(pair.value, item)
    else:
        raise TypeError(f"{type(value).__name__} is not an OTLP attribute value")


class OTLPHTTPSpanExporter(SpanExporter):
    """Posts spans to an OTLP/HTTP endpoint (``.../v1/traces``) as protobuf."""

    def __init__(self, endpoint: str, *, timeout_s: float = 10.0, retries: int = 3) -> None:
        self.endpoint = endpoint
        retry = Retry(
            total=retries,
            backoff_factor=0.5,
            status_forcelist=RETRYABLE_STATUSES,
            allowed_methods=None,  # a re-sent span is harmless: one row per (trace, span) id
            raise_on_status=False,
        )
        self._pool = urllib3.PoolManager(
            maxsize=1, retries=retry, timeout=urllib3.Timeout(total=timeout_s)
        )
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut:
            return SpanExportResult.FAILURE
        body = encode_spans(spans)
        try:
            response = self._pool.request("POST", self.endpoint, body=body, headers=_HEADERS)
        except urllib3.exceptions.HTTPError as exc:
            _logger.warning("%d spans not exported to %s: %s", len(spans), self.endpoint, exc)
            return SpanExportResult.FAILURE
        if not 200 <= response.status < 300:
            _logger.warning(
                "%d spans not exported: %s answered HTTP %d %s",
                len(spans),
                self.endpoint,
                response.status,
                response.data[:200].decode("utf-8", "replace"),
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shut = True
        self._pool.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is held here: the batch processor holds the spans
