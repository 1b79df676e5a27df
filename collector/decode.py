"""OTLP/HTTP trace payloads (protobuf or JSON) to rows and per-span rejections.

Protobuf bodies decode as a whole: bytes that do not parse are a bad request.
JSON bodies are walked by hand so that one span that does not parse (a bad hex
id, a wrong type) is rejected alone while the rest of its batch is stored. The
OTLP JSON encoding differs from protobuf's canonical JSON in its ids: they are
hex, not base64, and are converted before parsing.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.mapping import RejectedSpan, ResourceContext, SpanRow, map_span, resource_context

log = logging.getLogger(__name__)

Format = Literal["protobuf", "json"]
PROTOBUF_MEDIA_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_MEDIA_TYPES = frozenset({"application/json"})
MAX_ERROR_MESSAGES = 5  # distinct rejection reasons reported back per request
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class UnsupportedMediaType(ValueError):
    pass


class MalformedPayload(ValueError):
    pass


@dataclass
class Decoded:
    rows: list[SpanRow] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected += count
        if len(self.errors) < MAX_ERROR_MESSAGES and reason not in self.errors:
            self.errors.append(reason)


def media_format(content_type: str | None) -> Format:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in PROTOBUF_MEDIA_TYPES:
        return "protobuf"
    if media in JSON_MEDIA_TYPES:
        return "json"
    raise UnsupportedMediaType(
        f"Content-Type {media or '(none)'!r} is not supported: "
        "send application/x-protobuf or application/json"
    )


def decode(fmt: Format, body: bytes) -> Decoded:
    return decode_protobuf(body) if fmt == "protobuf" else decode_json(body)


def decode_protobuf(body: bytes) -> Decoded:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise MalformedPayload(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    return decode_message(request)


def decode_message(request: ExportTraceServiceRequest) -> Decoded:
    """Rows and rejections of an already parsed request (as OTLP/gRPC hands it over)."""
    out = Decoded()
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            ctx = resource_context(
                resource_spans.resource, scope_spans.scope.name, scope_spans.scope.version
            )
            for span in scope_spans.spans:
                _map_into(out, span, ctx)
    return out


def decode_json(body: bytes) -> Decoded:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from exc
    resource_spans_list = _list(document, "resourceSpans", "resource_spans", where="request")
    out = Decoded()
    for resource_spans in resource_spans_list:
        if not isinstance(resource_spans, dict):
            raise MalformedPayload("each resourceSpans entry must be an object")
        scope_spans_list = _list(resource_spans, "scopeSpans", "scope_spans", where="resourceSpans")
        try:
            resource = json_format.ParseDict(
                resource_spans.get("resource") or {}, Resource(), ignore_unknown_fields=True
            )
        except json_format.ParseError as exc:
            resource_error: str | None = f"invalid resource: {exc}"
        else:
            resource_error = None
        for scope_spans in scope_spans_list:
            if not isinstance(scope_spans, dict):
                raise MalformedPayload("each scopeSpans entry must be an object")
            spans = _list(scope_spans, "spans", "spans", where="scopeSpans")
            if resource_error is not None:
                out.reject(resource_error, len(spans))
                continue
            try:
                scope = json_format.ParseDict(
                    scope_spans.get("scope") or {},
                    InstrumentationScope(),
                    ignore_unknown_fields=True,
                )
            except json_format.ParseError as exc:
                out.reject(f"invalid scope: {exc}", len(spans))
                continue
            ctx = resource_context(resource, scope.name, scope.version)
            for span_json in spans:
                try:
                    span = _parse_json_span(span_json)
                except MalformedPayload as exc:
                    out.reject(str(exc))
                    continue
                _map_into(out, span, ctx)
    return out


def _map_into(out: Decoded, span: Span, ctx: ResourceContext) -> None:
    try:
        out.rows.append(map_span(span, ctx))
    except RejectedSpan as exc:
        out.reject(str(exc))
    except Exception:  # a mapping bug must cost one span, never the batch or the process
        log.exception("could not map span %s", span.span_id.hex())
        out.reject("internal error while mapping span")


def _list(obj: Any, camel: str, snake: str, *, where: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise MalformedPayload(f"{where} must be a JSON object")
    value = obj.get(camel, obj.get(snake, []))
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where}.{camel} must be an array")
    return value


def _parse_json_span(span_json: Any) -> Span:
    if not isinstance(span_json, dict):
        raise MalformedPayload("span must be a JSON object")
    span_json = _hex_ids_to_base64(span_json)
    links = span_json.get("links")
    if isinstance(links, list):
        span_json["links"] = [_hex_ids_to_base64(x) if isinstance(x, dict) else x for x in links]
    try:
        return json_format.ParseDict(span_json, Span(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise MalformedPayload(f"invalid span: {exc}") from exc


def _hex_ids_to_base64(obj: dict[str, Any]) -> dict[str, Any]:
    converted = dict(obj)
    for key in _ID_FIELDS:
        value = converted.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise MalformedPayload(f"{key} must be a hex string")
        try:
            raw = bytes.fromhex(value)
        except ValueError as exc:
            raise MalformedPayload(f"{key} {value[:40]!r} is not hex") from exc
        converted[key] = base64.b64encode(raw).decode("ascii")
    return converted
