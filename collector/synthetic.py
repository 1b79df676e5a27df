"""Synthetic, vLLM-shaped OTLP traces, for tests and benchmarks.

Each trace is what the bundled stack emits for one chat request: the
gateway's CLIENT span ``chat {model}`` (GenAI semconv attributes) and vLLM's
SERVER span ``llm_request`` as its child (``gen_ai.latency.*`` in seconds,
``gen_ai.usage.prompt_tokens``/``completion_tokens``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

GATEWAY_SERVICE = "inferwatch-gateway"
VLLM_SERVICE = "vllm"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP ``AnyValue``."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Mapping):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    if isinstance(value, Sequence):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    raise TypeError(f"no OTLP value for {type(value).__name__}")


def key_values(attrs: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def span(
    trace_id: bytes,
    span_id: bytes,
    name: str,
    start_ns: int,
    end_ns: int,
    *,
    parent_span_id: bytes = b"",
    kind: int = Span.SPAN_KIND_INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> Span:
    out = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        attributes=key_values(attributes or {}),
    )
    if error is not None:
        out.status.code = Status.STATUS_CODE_ERROR
        out.status.message = error
    return out


def resource_spans(
    service: str,
    spans: Sequence[Span],
    *,
    scope: str = "inferwatch",
    resource: Mapping[str, Any] | None = None,
) -> ResourceSpans:
    out = ResourceSpans()
    out.resource.attributes.extend(key_values({"service.name": service, **(resource or {})}))
    scope_spans = out.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return out


@dataclass(frozen=True)
class Request:
    """The facts of one synthetic LLM request, to compare stored rows against."""

    trace_id: bytes
    gateway_span_id: bytes
    engine_span_id: bytes
    model: str
    start_ns: int
    e2e_s: float
    ttft_s: float
    queue_s: float
    prefill_s: float
    decode_s: float
    input_tokens: int
    output_tokens: int
    error: str | None


def random_request(
    rng: random.Random, start_ns: int, *, model: str = DEFAULT_MODEL, error_rate: float = 0.0
) -> Request:
    queue = rng.uniform(0.0, 0.05)
    prefill = rng.uniform(0.005, 0.2)
    output_tokens = rng.randint(1, 400)
    decode = output_tokens * rng.uniform(0.01, 0.04)
    return Request(
        trace_id=rng.randbytes(16),
        gateway_span_id=rng.randbytes(8),
        engine_span_id=rng.randbytes(8),
        model=model,
        start_ns=start_ns,
        e2e_s=queue + prefill + decode + 0.002,
        ttft_s=queue + prefill + 0.001,
        queue_s=queue,
        prefill_s=prefill,
        decode_s=decode,
        input_tokens=rng.randint(5, 2000),
        output_tokens=output_tokens,
        error="upstream returned 500" if rng.random() < error_rate else None,
    )


# A fixed start (2025-11-21), so generated data is reproducible.
DEFAULT_START_NS = 1_763_700_000_000_000_000


def random_requests(
    n: int,
    *,
    seed: int | random.Random = 0,
    start_ns: int = DEFAULT_START_NS,
    spacing_ns: int = 10_000_000,
    **kw: Any,
) -> list[Request]:
    """``n`` requests from ``seed`` (or a shared generator), started ``spacing_ns`` apart."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    return [random_request(rng, start_ns + i * spacing_ns, **kw) for i in range(n)]


def gateway_span(req: Request) -> Span:
    end = req.start_ns + int(req.e2e_s * 1e9)
    return span(
        req.trace_id,
        req.gateway_span_id,
        f"chat {req.model}",
        req.start_ns,
        end,
        kind=Span.SPAN_KIND_CLIENT,
        error=req.error,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "vllm",
            "gen_ai.request.model": req.model,
            "gen_ai.response.model": req.model,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.temperature": 0.7,
            "gen_ai.request.top_p": 0.95,
            "gen_ai.usage.input_tokens": req.input_tokens,
            "gen_ai.usage.output_tokens": req.output_tokens,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.response.id": f"chatcmpl-{req.trace_id.hex()[:16]}",
            "gen_ai.response.time_to_first_chunk": req.ttft_s,
            "server.address": "127.0.0.1",
            "server.port": 8001,
            **({"error.type": "500"} if req.error else {}),
        },
    )


def engine_span(req: Request) -> Span:
    start = req.start_ns + 500_000  # vLLM sees the request 0.5 ms after the gateway
    end = start + int((req.queue_s + req.prefill_s + req.decode_s) * 1e9)
    return span(
        req.trace_id,
        req.engine_span_id,
        "llm_request",
        start,
        end,
        parent_span_id=req.gateway_span_id,
        kind=Span.SPAN_KIND_SERVER,
        attributes={
            "gen_ai.response.model": req.model,
            "gen_ai.request.id": f"chatcmpl-{req.trace_id.hex()[:16]}",
            "gen_ai.request.temperature": 0.7,
            "gen_ai.request.top_p": 0.95,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.n": 1,
            "gen_ai.usage.prompt_tokens": req.input_tokens,
            "gen_ai.usage.completion_tokens": req.output_tokens,
            "gen_ai.latency.time_in_queue": req.queue_s,
            "gen_ai.latency.time_to_first_token": req.queue_s + req.prefill_s,
            "gen_ai.latency.e2e": req.queue_s + req.prefill_s + req.decode_s,
            "gen_ai.latency.time_in_model_prefill": req.prefill_s,
            "gen_ai.latency.time_in_model_decode": req.decode_s,
            "gen_ai.latency.time_in_model_inference": req.prefill_s + req.decode_s,
        },
    )


def export_request(requests: Sequence[Request]) -> ExportTraceServiceRequest:
    """One export holding every request's two spans, grouped by service as SDKs do."""
    return ExportTraceServiceRequest(
        resource_spans=[
            resource_spans(
                GATEWAY_SERVICE, [gateway_span(r) for r in requests], scope="inferwatch.serving"
            ),
            resource_spans(
                VLLM_SERVICE, [engine_span(r) for r in requests], scope="vllm.llm_engine"
            ),
        ]
    )
