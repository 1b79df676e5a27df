"""One OTLP span to one ``spans`` row, or a rejection saying why.

A span is rejected, alone, when it cannot be stored faithfully: ids of the
wrong length or all zero, a missing or impossible time range. Everything else
is stored as sent, with the LLM facts lifted into typed columns.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.genai import lift
from collector.values import attributes_dict, clean_text

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
MAX_UNIX_NANO = 2**63 - 1  # Postgres bigint
_ZERO_TRACE_ID = bytes(TRACE_ID_BYTES)
_ZERO_SPAN_ID = bytes(SPAN_ID_BYTES)

SPAN_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    Span.SPAN_KIND_INTERNAL: "INTERNAL",
    Span.SPAN_KIND_SERVER: "SERVER",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_PRODUCER: "PRODUCER",
    Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
STATUS_CODES = {
    Status.STATUS_CODE_UNSET: "UNSET",
    Status.STATUS_CODE_OK: "OK",
    Status.STATUS_CODE_ERROR: "ERROR",
}


class RejectedSpan(ValueError):
    """This span cannot be stored; the message says why."""


class SpanRow(NamedTuple):
    """A row of the writer's staging table, in its column order."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    trace_state: str | None
    name: str
    kind: str
    service_name: str | None
    scope_name: str | None
    scope_version: str | None
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str
    status_message: str | None
    resource: str  # JSON text
    attributes: str  # JSON text
    events: str  # JSON text
    links: str  # JSON text
    is_llm: bool
    operation: str | None
    provider: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    tpot_ms: float | None
    e2e_ms: float | None
    queue_ms: float | None
    prefill_ms: float | None
    decode_ms: float | None
    finish_reason: str | None
    request_id: str | None
    prompt: str | None
    completion: str | None


class ResourceContext(NamedTuple):
    """What every span of one ``ResourceSpans``/``ScopeSpans`` shares, computed once."""

    resource_json: str
    service_name: str | None
    scope_name: str | None
    scope_version: str | None


def resource_context(resource: Resource, scope_name: str, scope_version: str) -> ResourceContext:
    attrs = attributes_dict(resource.attributes)
    service = attrs.get("service.name")
    return ResourceContext(
        resource_json=_dumps(attrs),
        service_name=None if service is None else str(service),
        scope_name=clean_text(scope_name) or None,
        scope_version=clean_text(scope_version) or None,
    )


def map_span(span: Span, ctx: ResourceContext) -> SpanRow:
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != TRACE_ID_BYTES or trace_id == _ZERO_TRACE_ID:
        raise RejectedSpan(f"trace_id must be {TRACE_ID_BYTES} bytes, not all zero")
    if len(span_id) != SPAN_ID_BYTES or span_id == _ZERO_SPAN_ID:
        raise RejectedSpan(f"span_id must be {SPAN_ID_BYTES} bytes, not all zero")
    if parent and len(parent) != SPAN_ID_BYTES:
        raise RejectedSpan(f"parent_span_id must be empty or {SPAN_ID_BYTES} bytes")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start == 0 or end == 0:
        raise RejectedSpan(f"span {span_id.hex()} has no start or end time")
    if end < start:
        raise RejectedSpan(f"span {span_id.hex()} ends before it starts")
    if end > MAX_UNIX_NANO:
        raise RejectedSpan(f"span {span_id.hex()} has a time beyond year 2262")

    name = clean_text(span.name)
    attrs = attributes_dict(span.attributes)
    facts = lift(attrs, name, (end - start) / 1e6)
    return SpanRow(
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent_span_id=parent.hex() if parent and parent != _ZERO_SPAN_ID else None,
        trace_state=clean_text(span.trace_state) or None,
        name=name,
        kind=SPAN_KINDS.get(span.kind, "UNSPECIFIED"),
        service_name=ctx.service_name,
        scope_name=ctx.scope_name,
        scope_version=ctx.scope_version,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        status_code=STATUS_CODES.get(span.status.code, "UNSET"),
        status_message=clean_text(span.status.message) or None,
        resource=ctx.resource_json,
        attributes=_dumps(attrs),
        events=_dumps([_event(e) for e in span.events]) if span.events else "[]",
        links=_dumps([_link(link) for link in span.links]) if span.links else "[]",
        is_llm=facts.is_llm,
        operation=facts.operation,
        provider=facts.provider,
        model=facts.model,
        input_tokens=facts.input_tokens,
        output_tokens=facts.output_tokens,
        ttft_ms=facts.ttft_ms,
        tpot_ms=facts.tpot_ms,
        e2e_ms=facts.e2e_ms,
        queue_ms=facts.queue_ms,
        prefill_ms=facts.prefill_ms,
        decode_ms=facts.decode_ms,
        finish_reason=facts.finish_reason,
        request_id=facts.request_id,
        prompt=facts.prompt,
        completion=facts.completion,
    )


def _event(event: Span.Event) -> dict[str, Any]:
    return {
        "time_unix_nano": event.time_unix_nano,
        "name": clean_text(event.name),
        "attributes": attributes_dict(event.attributes),
    }


def _link(link: Span.Link) -> dict[str, Any]:
    return {
        "trace_id": link.trace_id.hex(),
        "span_id": link.span_id.hex(),
        "trace_state": clean_text(link.trace_state),
        "attributes": attributes_dict(link.attributes),
    }


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")
