"""The OpenAI-compatible gateway: a streaming reverse proxy to vLLM that traces every request.

For each completion request the gateway starts a CLIENT span ``{operation}
{model}`` (continuing the caller's ``traceparent`` if any), always injects its
own ``traceparent`` upstream so vLLM's ``llm_request`` span is its child, and
returns the trace id in ``x-inferwatch-trace-id``. Streams are relayed event
by event, unbuffered; an event is rewritten only to remove what the gateway
asked for on its own behalf (the usage chunk, log-probabilities). Text is
captured per policy and redacted before it is set on the span.

Failures answer in OpenAI's error format: 400 bad JSON, 413 too large, 502
bad upstream answer, 503 upstream down, 504 upstream timeout. A client that
disconnects mid-stream cancels the upstream request; its span is marked
aborted (``inferwatch.aborted``, finish reason ``aborted``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from inferwatch.http_body import BodyTooLarge, read_limited
from inferwatch.settings import ServingSettings
from serving.genai import (
    CHAT,
    TEXT_COMPLETION,
    ResponseObserver,
    input_messages,
    request_attributes,
)
from serving.redact import Redactor
from serving.sse import SSEParser, encode_data

log = logging.getLogger(__name__)

TRACE_ID_HEADER = "x-inferwatch-trace-id"
# Request headers passed on to vLLM (hop-by-hop and body framing are the client's own).
FORWARDED_HEADERS = ("authorization", "accept", "user-agent", "x-request-id")
_PROPAGATOR = TraceContextTextMapPropagator()


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object, as answers and in-band stream events carry it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_error(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code), status_code=status, headers=headers)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "inferwatch_gateway_requests",
            "Completion requests, by outcome.",
            ["operation", "outcome"],
            registry=registry,
        )


def create_gateway(
    settings: ServingSettings,
    tracer_provider: TracerProvider,
    *,
    registry: CollectorRegistry | None = None,
    sample: Callable[[], float] = random.random,
) -> FastAPI:
    """The gateway app; ``tracer_provider`` exports its spans (the caller owns and flushes it)."""
    tracer = tracer_provider.get_tracer("inferwatch.serving")
    redactor = Redactor.with_patterns(settings.redact_patterns)
    metrics = GatewayMetrics(registry if registry is not None else CollectorRegistry())
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.upstream_timeout_s, connect=settings.connect_timeout_s)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        async with httpx.AsyncClient(
            base_url=settings.upstream_url, timeout=timeout, limits=limits
        ) as client:
            state["client"] = client
            yield

    app = FastAPI(title="InferWatch gateway", lifespan=lifespan)
    app.state.metrics = metrics

    def capture() -> bool:
        if settings.capture == "all":
            return True
        return settings.capture == "sampled" and sample() < settings.capture_rate

    async def proxy(request: Request, operation: str, path: str) -> Response:
        try:
            raw = await read_limited(request.stream(), gzip=False, limit=settings.max_input_bytes)
        except BodyTooLarge:
            return openai_error(
                413,
                f"request body is over {settings.max_input_bytes} bytes",
                "invalid_request_error",
                "request_too_large",
            )
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return openai_error(
                400,
                f"request body is not valid JSON: {exc}",
                "invalid_request_error",
                "invalid_json",
            )
        if not isinstance(body, dict):
            return openai_error(
                400, "request body must be a JSON object", "invalid_request_error", "invalid_json"
            )

        model = body.get("model") if isinstance(body.get("model"), str) else "unknown"
        span = tracer.start_span(
            f"{operation} {model}",
            context=_PROPAGATOR.extract(request.headers),
            kind=SpanKind.CLIENT,
            attributes=request_attributes(operation, body),
        )
        captured = capture()
        if captured:
            span.set_attribute(
                "gen_ai.input.messages",
                orjson.dumps(input_messages(operation, body, redactor.redact)).decode(),
            )
        streaming = bool(body.get("stream"))
        upstream_body, observer = _upstream_request(operation, body, settings, streaming)
        headers = {k: v for k, v in request.headers.items() if k in FORWARDED_HEADERS}
        headers["content-type"] = "application/json"
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        trace_id = format(span.get_span_context().trace_id, "032x")
        reply_headers = {TRACE_ID_HEADER: trace_id}

        client = state["client"]
        observer.started = time.perf_counter()
        upstream_request = client.build_request(
            "POST", path, content=orjson.dumps(upstream_body), headers=headers
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            return _upstream_failed(span, exc, reply_headers, metrics, operation)

        if upstream.status_code >= 400 or not streaming:
            try:
                content = await upstream.aread()
            except httpx.HTTPError as exc:
                return _upstream_failed(span, exc, reply_headers, metrics, operation)
            finally:
                await upstream.aclose()
            return _whole_response(
                span,
                upstream.status_code,
                content,
                observer,
                captured,
                redactor,
                reply_headers,
                metrics,
                operation,
            )

        return StreamingResponse(
            _relay(span, upstream, observer, captured, redactor, metrics, operation),
            media_type="text/event-stream",
            headers=reply_headers,
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await proxy(request, CHAT, "/v1/chat/completions")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await proxy(request, TEXT_COMPLETION, "/v1/completions")

    @app.get("/v1/models")
    async def models() -> Response:
        try:
            upstream = await state["client"].get("/v1/models")
        except httpx.HTTPError as exc:
            return openai_error(503, f"vLLM is unreachable: {exc}", "server_error", "upstream")
        return Response(
            upstream.content, upstream.status_code, media_type=upstream.headers.get("content-type")
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            health = await state["client"].get("/health", timeout=5)
            ok = health.status_code == 200
            detail = f"HTTP {health.status_code}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"unreachable: {exc.__class__.__name__}"
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "vllm": detail},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _upstream_request(
    operation: str, body: dict[str, Any], settings: ServingSettings, streaming: bool
) -> tuple[dict[str, Any], ResponseObserver]:
    """The body sent to vLLM, and an observer that knows what to strip from its answer."""
    upstream = dict(body)
    keep_usage = True
    if streaming:
        given = body.get("stream_options")
        options: dict[str, Any] = given if isinstance(given, dict) else {}
        keep_usage = bool(options.get("include_usage"))
        upstream["stream_options"] = {**options, "include_usage": True}
    asked = body.get("logprobs") not in (None, False)
    keep_logprobs = True
    if settings.logprobs and not asked:
        upstream["logprobs"] = True if operation == CHAT else 1
        keep_logprobs = False
    observer = ResponseObserver(
        operation,
        time.perf_counter(),
        keep_usage=keep_usage,
        keep_logprobs=keep_logprobs,
        low_logprob=settings.low_confidence_logprob,
    )
    return upstream, observer


def _whole_response(
    span: Span,
    status: int,
    content: bytes,
    observer: ResponseObserver,
    captured: bool,
    redactor: Redactor,
    headers: dict[str, str],
    metrics: GatewayMetrics,
    operation: str,
) -> Response:
    finished = time.perf_counter()
    if status >= 400:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR, _error_message(content, status)))
        span.end()
        metrics.requests.labels(operation, "upstream_error").inc()
        return Response(content, status, headers=headers, media_type="application/json")
    try:
        payload = orjson.loads(content)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        return _upstream_failed(span, exc, headers, metrics, operation)
    if observer.first_token_at is None:
        observer.first_token_at = finished  # non-streamed: the whole answer arrives at once
    payload = observer.whole(payload)
    _finish(span, observer, captured, redactor, finished)
    metrics.requests.labels(operation, "ok").inc()
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


async def _relay(
    span: Span,
    upstream: httpx.Response,
    observer: ResponseObserver,
    captured: bool,
    redactor: Redactor,
    metrics: GatewayMetrics,
    operation: str,
) -> AsyncIterator[bytes]:
    parser = SSEParser()
    outcome, error = "ok", None
    done = False
    try:
        async for chunk in upstream.aiter_raw():
            for event in parser.feed(chunk):
                done = done or (event.data or "").strip() == "[DONE]"
                out = _relay_event(event.raw, event.data, observer)
                if out:
                    yield out
        tail = parser.flush()
        if tail is not None:
            out = _relay_event(tail.raw, tail.data, observer)
            if out:
                yield out
        if not done:
            outcome, error = "upstream_disconnected", "vLLM ended the stream before [DONE]"
    except httpx.TimeoutException:
        outcome, error = "timeout", "vLLM sent nothing for too long"
    except httpx.HTTPError as exc:
        outcome, error = "upstream_disconnected", f"vLLM connection failed: {exc}"
    except (asyncio.CancelledError, GeneratorExit):
        outcome = "aborted"  # the client went away: closing `upstream` cancels vLLM's work
        raise
    finally:
        await upstream.aclose()
        finished = time.perf_counter()
        if outcome == "aborted":
            span.set_attribute("inferwatch.aborted", True)
            observer.finish_reasons.setdefault(0, "aborted")
        elif error is not None:
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, error))
        _finish(span, observer, captured, redactor, finished)
        metrics.requests.labels(operation, outcome).inc()
    if error is not None:  # tell the client in-band: the status line was sent long ago
        yield encode_data(orjson.dumps(error_body(error, "server_error", outcome)).decode())


def _relay_event(raw: bytes, data: str | None, observer: ResponseObserver) -> bytes | None:
    if data is None:
        return raw
    replacement = observer.chunk(data)
    if replacement is None:
        return None
    return raw if replacement is data else encode_data(replacement)


def _finish(
    span: Span, observer: ResponseObserver, captured: bool, redactor: Redactor, finished: float
) -> None:
    span.set_attributes(observer.response_attributes(finished=finished))
    if captured and observer.texts:
        span.set_attribute(
            "gen_ai.output.messages",
            orjson.dumps(observer.output_messages(redactor.redact)).decode(),
        )
    span.end()


def _upstream_failed(
    span: Span, exc: Exception, headers: dict[str, str], metrics: GatewayMetrics, operation: str
) -> JSONResponse:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        status, code, message = 504, "timeout", "vLLM did not answer in time"
    elif isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        status, code, message = 503, "upstream_unavailable", f"vLLM is unreachable: {exc}"
    else:
        status, code, message = 502, "bad_upstream", f"vLLM's answer could not be used: {exc}"
    span.set_attribute("error.type", code)
    span.set_status(Status(StatusCode.ERROR, message))
    span.end()
    metrics.requests.labels(operation, code).inc()
    return openai_error(status, message, "server_error", code, headers)


def _error_message(content: bytes, status: int) -> str:
    try:
        payload = orjson.loads(content)
        message = payload.get("error", {}).get("message") or payload.get("message")
        if isinstance(message, str):
            return message
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return f"vLLM answered HTTP {status}"
