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
disconnects, mid-stream or while waiting for a whole answer, cancels the
upstream request; its span is marked aborted (``inferwatch.aborted``, finish
reason ``aborted``).

The two completion routes are served by plain ASGI code (``Gateway``): they
are the hot path, and a framework's routing, middleware and streaming response
cost more per event than the proxy's own work. Everything else (models,
health, readiness, metrics) is an ordinary FastAPI app behind it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.types import Message, Receive, Scope, Send

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
COMPLETION_PATHS = {"/v1/chat/completions": CHAT, "/v1/completions": TEXT_COMPLETION}
# Request headers passed on to vLLM (hop-by-hop and body framing are the client's own).
FORWARDED_HEADERS = frozenset({"authorization", "accept", "user-agent", "x-request-id"})
CONTEXT_HEADERS = frozenset({"traceparent", "tracestate"})
_PROPAGATOR = TraceContextTextMapPropagator()
READY_TIMEOUT = aiohttp.ClientTimeout(total=5)
_JSON = b"application/json"
_EVENT_STREAM = b"text/event-stream"


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object, as answers and in-band stream events carry it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code), status_code=status)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "inferwatch_gateway_requests",
            "Completion requests, by outcome.",
            ["operation", "outcome"],
            registry=registry,
        )


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


@dataclass(slots=True)
class Call:
    """One completion request on its way through the gateway."""

    operation: str
    span: Span
    observer: ResponseObserver
    body: dict[str, Any]  # as the client sent it
    captured: bool
    reply_headers: list[tuple[bytes, bytes]]
    ended: bool = False


def create_gateway(
    settings: ServingSettings,
    tracer_provider: TracerProvider,
    *,
    registry: CollectorRegistry | None = None,
    sample: Callable[[], float] = random.random,
) -> Gateway:
    """The gateway app; ``tracer_provider`` exports its spans (the caller owns and flushes it)."""
    return Gateway(settings, tracer_provider, registry or CollectorRegistry(), sample)


class Gateway:
    """ASGI app: completions proxied here, every other route by ``self.api`` (FastAPI)."""

    def __init__(
        self,
        settings: ServingSettings,
        tracer_provider: TracerProvider,
        registry: CollectorRegistry,
        sample: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.tracer = tracer_provider.get_tracer("inferwatch.serving")
        self.redactor = Redactor.with_patterns(settings.redact_patterns)
        self.metrics = GatewayMetrics(registry)
        self.sample = sample
        self._client: aiohttp.ClientSession | None = None
        self.api = self._create_api()

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            raise RuntimeError("the gateway's lifespan has not started")
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            operation = COMPLETION_PATHS.get(scope["path"])
            if operation is not None:
                await self._completion(scope, receive, send, operation)
                return
        await self.api(scope, receive, send)

    def _create_api(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            cfg = self.settings
            timeout = aiohttp.ClientTimeout(
                total=None, connect=cfg.connect_timeout_s, sock_read=cfg.upstream_timeout_s
            )
            async with aiohttp.ClientSession(
                cfg.upstream_url,
                timeout=timeout,
                connector=aiohttp.TCPConnector(limit=0),  # vLLM does its own queueing
                auto_decompress=False,  # relay bytes as vLLM sent them
                skip_auto_headers=("user-agent",),
            ) as client:
                self._client = client
                yield
                self._client = None

        api = FastAPI(title="InferWatch gateway", lifespan=lifespan)

        @api.get("/v1/models")
        async def models() -> Response:
            try:
                async with self.client.get("/v1/models") as upstream:
                    content = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                message = f"vLLM is unreachable: {exc!r}"
                return openai_error(503, message, "server_error", "upstream")
            return Response(content, upstream.status, media_type=upstream.content_type)

        @api.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @api.get("/readyz")
        async def readyz() -> JSONResponse:
            try:
                async with self.client.get("/health", timeout=READY_TIMEOUT) as health:
                    ok = health.status == 200
                    detail = f"HTTP {health.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, detail = False, f"unreachable: {exc.__class__.__name__}"
            return JSONResponse(
                {"status": "ready" if ok else "not ready", "vllm": detail},
                status_code=200 if ok else 503,
            )

        @api.get("/metrics")
        async def prometheus_metrics() -> Response:
            return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

        return api

    def _capture(self) -> bool:
        if self.settings.capture == "all":
            return True
        return self.settings.capture == "sampled" and self.sample() < self.settings.capture_rate

    async def _completion(self, scope: Scope, receive: Receive, send: Send, operation: str) -> None:
        cfg = self.settings
        try:
            raw = await read_limited(_body(receive), gzip=False, limit=cfg.max_input_bytes)
        except BodyTooLarge:
            message = f"request body is over {cfg.max_input_bytes} bytes"
            await _send_error(send, 413, message, "invalid_request_error", "request_too_large")
            return
        except ClientGone:
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            message = f"request body is not valid JSON: {exc}"
            await _send_error(send, 400, message, "invalid_request_error", "invalid_json")
            return
        if not isinstance(body, dict):
            message = "request body must be a JSON object"
            await _send_error(send, 400, message, "invalid_request_error", "invalid_json")
            return

        headers = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1")
            if name in FORWARDED_HEADERS or name in CONTEXT_HEADERS:
                headers[name] = value.decode("latin-1")
        model = body.get("model") if isinstance(body.get("model"), str) else "unknown"
        span = self.tracer.start_span(
            f"{operation} {model}",
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.CLIENT,
            attributes=request_attributes(operation, body),
        )
        streaming = bool(body.get("stream"))
        upstream_body, observer = _upstream_request(operation, body, cfg, streaming)
        for name in CONTEXT_HEADERS:
            headers.pop(name, None)
        headers["content-type"] = "application/json"
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        trace_id = format(span.get_span_context().trace_id, "032x")
        reply_headers = [(TRACE_ID_HEADER.encode(), trace_id.encode())]
        call = Call(operation, span, observer, body, self._capture(), reply_headers)
        data = orjson.dumps(upstream_body)
        observer.started = time.perf_counter()
        exchange = asyncio.ensure_future(
            self._exchange(call, scope["path"], data, headers, send, streaming)
        )
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((exchange, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not exchange.done():  # the client left (or the server is stopping)
                exchange.cancel()
                with suppress(asyncio.CancelledError):
                    await exchange
        if not exchange.cancelled() and exchange.exception() is not None:
            if not call.ended:  # a bug in the gateway: still end the span, marked
                span.set_attribute("error.type", "internal_error")
                span.set_status(Status(StatusCode.ERROR, repr(exchange.exception())))
                self._end(call, "internal_error")
            exchange.result()  # raises: the server answers 500 if nothing was sent yet

    async def _exchange(
        self,
        call: Call,
        path: str,
        data: bytes,
        headers: dict[str, str],
        send: Send,
        streaming: bool,
    ) -> None:
        try:
            upstream = await self.client.post(path, data=data, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._upstream_failed(call, exc, send)
            return
        except asyncio.CancelledError:
            self._aborted(call)
            raise
        complete = False
        try:
            if upstream.status >= 400 or not streaming:
                try:
                    content = await upstream.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    await self._upstream_failed(call, exc, send)
                    return
                await self._whole_response(call, upstream.status, content, send)
            else:
                await self._relay(call, upstream, send)
            complete = True
        except asyncio.CancelledError:
            self._aborted(call)
            raise
        finally:
            if complete:
                upstream.release()  # the connection goes back to the pool
            else:
                upstream.close()  # a client that left: vLLM sees the disconnect and aborts

    async def _whole_response(self, call: Call, status: int, content: bytes, send: Send) -> None:
        finished = time.perf_counter()
        if status >= 400:
            call.span.set_attribute("error.type", str(status))
            call.span.set_status(Status(StatusCode.ERROR, _error_message(content, status)))
            await _send_whole(send, status, content, call.reply_headers)
            self._end(call, "upstream_error")
            return
        try:
            payload = orjson.loads(content)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            await self._upstream_failed(call, exc, send)
            return
        # Non-streamed, the whole answer arrives at once: the gateway cannot see the first
        # token, so it records no TTFT/TPOT and llm_requests takes vLLM's own (a TTFT equal
        # to the whole latency and a TPOT of 0 would be wrong on every chart).
        payload = call.observer.whole(payload)
        await _send_whole(send, status, orjson.dumps(payload), call.reply_headers)
        self._finish(call, "ok", finished)

    async def _relay(self, call: Call, upstream: aiohttp.ClientResponse, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status,
                "headers": [(b"content-type", _EVENT_STREAM), *call.reply_headers],
            }
        )
        observer = call.observer
        parser = SSEParser()
        outcome, error = "ok", None
        done = False
        try:
            async for chunk in upstream.content.iter_any():
                out = []
                for event in parser.feed(chunk):
                    done = done or (event.data or "").strip() == "[DONE]"
                    relayed = _relay_event(event.raw, event.data, observer)
                    if relayed:
                        out.append(relayed)
                if out:
                    await _send_body(send, b"".join(out))
            tail = parser.flush()
            if tail is not None:
                relayed = _relay_event(tail.raw, tail.data, observer)
                if relayed:
                    await _send_body(send, relayed)
            if not done:
                outcome, error = "upstream_disconnected", "vLLM ended the stream before [DONE]"
        except TimeoutError:
            outcome, error = "timeout", "vLLM sent nothing for too long"
        except aiohttp.ClientError as exc:
            outcome, error = "upstream_disconnected", f"vLLM connection failed: {exc!r}"
        finished = time.perf_counter()
        if error is not None:  # tell the client in-band: the status line was sent long ago
            call.span.set_attribute("error.type", outcome)
            call.span.set_status(Status(StatusCode.ERROR, error))
            in_band = encode_data(orjson.dumps(error_body(error, "server_error", outcome)).decode())
            await _send_body(send, in_band)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self._finish(call, outcome, finished)

    async def _upstream_failed(self, call: Call, exc: Exception, send: Send) -> None:
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            status, code, message = 503, "upstream_unavailable", f"vLLM is unreachable: {exc}"
        elif isinstance(exc, TimeoutError):
            status, code, message = 504, "timeout", "vLLM did not answer in time"
        else:
            status, code, message = 502, "bad_upstream", f"vLLM's answer could not be used: {exc!r}"
        call.span.set_attribute("error.type", code)
        call.span.set_status(Status(StatusCode.ERROR, message))
        await _send_error(send, status, message, "server_error", code, call.reply_headers)
        self._end(call, code)

    def _aborted(self, call: Call) -> None:
        if call.ended:
            return
        call.span.set_attribute("inferwatch.aborted", True)
        call.observer.finish_reasons.setdefault(0, "aborted")
        self._finish(call, "aborted", time.perf_counter())

    def _finish(self, call: Call, outcome: str, finished: float) -> None:
        """End the span with what the response showed (usage, timings, text).

        Called once the client has its answer: redacting and serializing the
        captured text is off the latency the client sees."""
        span, observer = call.span, call.observer
        span.set_attributes(observer.response_attributes(finished=finished))
        if call.captured:
            span.set_attribute(
                "gen_ai.input.messages",
                orjson.dumps(
                    input_messages(call.operation, call.body, self.redactor.redact)
                ).decode(),
            )
        if call.captured and observer.texts:
            span.set_attribute(
                "gen_ai.output.messages",
                orjson.dumps(observer.output_messages(self.redactor.redact)).decode(),
            )
        self._end(call, outcome)

    def _end(self, call: Call, outcome: str) -> None:
        call.ended = True
        call.span.end()
        self.metrics.requests.labels(call.operation, outcome).inc()


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _disconnected(receive: Receive) -> None:
    """Returns once the client has gone (after the body, ASGI's receive only reports that)."""
    message: Message = {}
    while message.get("type") != "http.disconnect":
        message = await receive()


async def _send_body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _send_whole(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_error(
    send: Send,
    status: int,
    message: str,
    kind: str,
    code: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _send_whole(send, status, orjson.dumps(error_body(message, kind, code)), headers or [])


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


def _relay_event(raw: bytes, data: str | None, observer: ResponseObserver) -> bytes | None:
    if data is None:
        return raw
    replacement = observer.chunk(data)
    if replacement is None:
        return None
    return raw if replacement is data else encode_data(replacement)


def _error_message(content: bytes, status: int) -> str:
    try:
        payload = orjson.loads(content)
        message = payload.get("error", {}).get("message") or payload.get("message")
        if isinstance(message, str):
            return message
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return f"vLLM answered HTTP {status}"
