"""The gateway's span exporter: the SDK's exact OTLP bytes, posted, retried, failing cleanly."""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceFlags, TraceState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.otlp import OTLPHTTPSpanExporter, encode_spans
from tests.servers import ServerThread

REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "value"), ("other", "x")]),
)


def sdk_spans(resource: Resource, count: int = 4) -> list[ReadableSpan]:
    """Spans from the SDK's own tracer using every field: a remote parent with trace state,
    every span kind, events, links, each status, every attribute type, attributes dropped
    over the limit, two scopes (one with a version, attributes and a schema URL)."""
    keep = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_span_attributes=8))
    provider.add_span_processor(SimpleSpanProcessor(keep))
    kinds = list(SpanKind)
    for i in range(count):
        if i % 2:
            tracer = provider.get_tracer("gateway", "1.2", "https://schema/1", {"scope.a": 1})
        else:
            tracer = provider.get_tracer("other")
        span = tracer.start_span(
            f"chat m{i}",
            context=set_span_in_context(NonRecordingSpan(REMOTE)) if i % 2 else None,
            kind=kinds[i % len(kinds)],
            links=[Link(REMOTE, {"why": "test"})],
            attributes={
                "s": "text with ünïcode",
                "i": 2**40 + i,
                "f": 0.25,
                "b": True,
                "strings": ("stop", "length"),
                "numbers": (1, 2, 3),
            },
        )
        span.add_event("first token", {"at": 0.05})
        span.add_event("no attributes")
        span.set_attributes({f"extra.{k}": k for k in range(5)})  # over the limit of 8
        status = [StatusCode.ERROR, StatusCode.OK, StatusCode.UNSET][i % 3]
        span.set_status(status, "upstream 500" if status is StatusCode.ERROR else None)
        span.end()
    return list(keep.get_finished_spans())


def test_the_bytes_are_the_sdks_for_spans_using_every_field() -> None:
    first = Resource.create({"service.name": "gateway", "host.name": "h"})
    second = Resource({"service.name": "other"}, schema_url="https://schema/r")
    spans = sdk_spans(first) + sdk_spans(second, 2) + sdk_spans(first, 1)
    assert spans[0].dropped_attributes == 3  # the limit really dropped some
    ours = encode_spans(spans)
    assert ours == sdk_encode(spans).SerializePartialToString()
    decoded = ExportTraceServiceRequest.FromString(ours)
    # grouped like the SDK: equal resources (two providers' here) and scopes share an entry
    grouped = [[len(s.spans) for s in r.scope_spans] for r in decoded.resource_spans]
    assert grouped == [[3, 2], [1, 1]]


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 7


class Ratio(float):
    pass


def test_values_the_sdk_api_would_refuse_still_encode_as_the_sdk_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A ReadableSpan built directly can carry any value: the same bytes as the SDK's encoder,
    and a value OTLP cannot carry (an int over 64 bits, an object) is dropped with a log."""
    odd_values: dict[Any, Any] = {
        "none": None,
        "empty": (),
        "nested": [["a", 1], {"k": None}],
        "map": {"k": "v", 3: [True, 1.5]},
        "bytes": b"\x00\xff",
        "subclasses": [Colour.RED, Level.HIGH, Ratio(0.5)],
        "too big": 2**70,
        "object": object(),
        "after": "kept",
    }
    span = ReadableSpan(
        "odd",
        context=SpanContext(1, 2, is_remote=False),
        parent=None,
        resource=Resource({"r": "x"}),
        attributes=odd_values,
        events=[Event("e", {"inner": {"x": ()}}, timestamp=5)],
        kind=SpanKind.SERVER,
        instrumentation_scope=InstrumentationScope("s", "1"),
        start_time=1,
        end_time=None,
    )
    with caplog.at_level(logging.WARNING, logger="serving.otlp"):
        ours = encode_spans([span])
    with caplog.at_level(logging.CRITICAL):  # the SDK logs the same two with tracebacks
        assert ours == sdk_encode([span]).SerializePartialToString()
    dropped = sorted(r.getMessage().split("'")[1] for r in caplog.records)
    assert dropped == ["object", "too big"]
    (kept,) = ExportTraceServiceRequest.FromString(ours).resource_spans[0].scope_spans[0].spans
    assert [a.key for a in kept.attributes][-1] == "after"


@dataclass
class Endpoint:
    """An OTLP/HTTP receiver answering from a script of statuses (then 200), keeping spans."""

    statuses: list[int] = field(default_factory=list)
    posts: int = 0
    names: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            self.posts += 1
            body = await request.body()
            assert request.headers["content-type"] == "application/x-protobuf"
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
                    for scope in resource.scope_spans:
                        self.names.extend(span.name for span in scope.spans)
            return Response(b"nope" if status >= 400 else b"", status_code=status)

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    got = Endpoint()
    with ServerThread(got.app()) as url:
        yield got, f"{url}/v1/traces"


def test_spans_reach_the_endpoint(endpoint: tuple[Endpoint, str]) -> None:
    got, url = endpoint
    spans = sdk_spans(Resource.create({}))
    assert OTLPHTTPSpanExporter(url).export(spans) is SpanExportResult.SUCCESS
    assert sorted(got.names) == sorted(span.name for span in spans)


def test_retryable_answers_are_retried_and_others_are_not(
    endpoint: tuple[Endpoint, str], caplog: pytest.LogCaptureFixture
) -> None:
    got, url = endpoint
    spans = sdk_spans(Resource.create({}), 1)
    got.statuses = [503, 429]
    assert OTLPHTTPSpanExporter(url).export(spans) is SpanExportResult.SUCCESS
    assert got.posts == 3 and got.names == ["chat m0"]

    got.statuses, got.posts = [400], 0
    assert OTLPHTTPSpanExporter(url).export(spans) is SpanExportResult.FAILURE
    assert got.posts == 1
    assert "HTTP 400 nope" in caplog.text

    got.statuses, got.posts = [503, 503, 503], 0
    assert OTLPHTTPSpanExporter(url, retries=2).export(spans) is SpanExportResult.FAILURE
    assert got.posts == 3
    assert "HTTP 503" in caplog.text


def test_an_unreachable_endpoint_fails_the_export_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ServerThread(Starlette()) as url:  # a port that was just free
        pass
    exporter = OTLPHTTPSpanExporter(f"{url}/v1/traces", retries=1)
    assert exporter.export(sdk_spans(Resource.create({}), 1)) is SpanExportResult.FAILURE
    assert "1 spans not exported" in caplog.text
    exporter.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE  # after shutdown, nothing is sent
