"""One OTLP span to one ``spans`` row, or a rejection saying why.

A span is rejected, alone, when it cannot be stored faithfully: ids of the
wrong length or all zero, a missing or impossible time range. Everything else
is stored as sent, with the LLM facts lifted into typed columns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.genai import LlmFacts, lift
from collector.values import attributes_dict, clean_text, scrub_nul

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
MAX_UNIX_NANO = 2**63 - 1  # Postgres bigint
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON_NUL = "\\u0000"  # how orjson writes U+0000, which Postgres's jsonb refuses
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
    start_time: datetime
    end_time: datetime
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    status_code: str
    status_message: str | None
    resource: str  # JSON text, written to a jsonb column as is
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


# The row ends with the lifted LLM facts, in the same order, so it can take ``*facts``.
assert SpanRow._fields[-len(LlmFacts._fields) :] == LlmFacts._fields


class ResourceContext(NamedTuple):
    """What every span of one ``ResourceSpans``/``ScopeSpans`` shares, computed once."""

    resource_json: str
    service_name: str | None
    scope_name: str | None
    scope_version: str | None


def resource_context(resource: Resource, scope_name: str, scope_version: str) -> ResourceContext:
    attrs, resource_json = _json_without_nul(attributes_dict(resource.attributes))
    service = attrs.get("service.name")
    return ResourceContext(
        resource_json=resource_json,
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
    attrs, attrs_json = _json_without_nul(attrs)
    facts = lift(attrs, name, (end - start) / 1e6)
    status = span.status
    events, links = span.events, span.links
    return SpanRow(  # positional: this runs for every span, and keywords cost ~2 µs here
        trace_id.hex(),
        span_id.hex(),
        parent.hex() if parent and parent != _ZERO_SPAN_ID else None,
        clean_text(span.trace_state) or None,
        name,
        SPAN_KINDS.get(span.kind, "UNSPECIFIED"),
        ctx.service_name,
        ctx.scope_name,
        ctx.scope_version,
        _EPOCH + timedelta(microseconds=start // 1000),
        _EPOCH + timedelta(microseconds=end // 1000),
        start,
        end,
        (end - start) / 1e6,
        STATUS_CODES.get(status.code, "UNSET"),
        clean_text(status.message) or None,
        ctx.resource_json,
        attrs_json,
        _json_without_nul([_event(e) for e in events])[1] if events else "[]",
        _json_without_nul([_link(link) for link in links])[1] if links else "[]",
        *facts,
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


def _json_without_nul(value: Any) -> tuple[Any, str]:
    """``value`` and its JSON text, with U+0000 replaced where there is any. Checking the
    serialized text once is cheaper than checking every string on the way (NUL is rare)."""
    text = _dumps(value)
    if _JSON_NUL in text:
        value = scrub_nul(value)
        text = _dumps(value)
    return value, text


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")
