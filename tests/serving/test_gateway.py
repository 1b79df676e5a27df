"""The gateway over real HTTP, against a fake OpenAI-style upstream standing in for vLLM."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from inferwatch.settings import ServingSettings
from serving.gateway import TRACE_ID_HEADER, create_gateway
from tests.servers import ServerThread
from tests.serving.fake_upstream import TEXT, WORDS, Recorder, create_fake_upstream

CALLER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class Stack:
    http: httpx.Client
    spans: InMemorySpanExporter
    upstream: Recorder

    def only_span(self) -> ReadableSpan:
        deadline = time.monotonic() + 10
        while not self.spans.get_finished_spans():
            assert time.monotonic() < deadline, "the gateway span never ended"
            time.sleep(0.02)
        (span,) = self.spans.get_finished_spans()
        return span

    def sent_upstream(self) -> tuple[dict[str, str], dict[str, Any]]:
        (request,) = self.upstream.requests
        return request


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def run_stack(settings: ServingSettings, *, upstream_url: str | None = None) -> Iterator[Stack]:
    recorder = Recorder()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with ServerThread(create_fake_upstream(recorder)) as fake:
        cfg = settings.model_copy(update={"upstream_url": upstream_url or fake})
        with (
            ServerThread(create_gateway(cfg, provider)) as gateway,
            httpx.Client(base_url=gateway, timeout=30) as http,
        ):
            yield Stack(http, exporter, recorder)


@pytest.fixture
def stack() -> Iterator[Stack]:
    yield from run_stack(ServingSettings(upstream_timeout_s=2.0))


def chat(model: str = "ok", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Mail bob@corp.example about card 4111 1111 1111 1111"},
        ],
        **extra,
    }


def test_non_streamed_chat_is_traced_end_to_end(stack: Stack) -> None:
    response = stack.http.post(
        "/v1/chat/completions",
        json=chat(max_tokens=20, temperature=0.3),
        headers={"traceparent": CALLER_TRACEPARENT},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == TEXT
    assert body["choices"][0]["logprobs"] is None  # asked for by the gateway, not the client

    span = stack.only_span()
    assert span.name == "chat ok" and span.kind == SpanKind.CLIENT
    ctx = span.get_span_context()
    assert ctx is not None
    # The caller's trace is continued, and its id comes back in the header.
    assert format(ctx.trace_id, "032x") == CALLER_TRACEPARENT.split("-")[1]
    assert span.parent is not None and format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert response.headers[TRACE_ID_HEADER] == format(ctx.trace_id, "032x")
    # vLLM gets a traceparent naming the gateway span as parent.
    headers, sent = stack.sent_upstream()
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"
    assert sent["logprobs"] is True

    attrs = attrs_of(span)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "vllm"
    assert attrs["gen_ai.request.model"] == "ok" and attrs["gen_ai.response.model"] == "ok"
    assert attrs["gen_ai.request.max_tokens"] == 20 and attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["gen_ai.response.id"] == "cmpl-whole"
    # Not streamed: no first chunk to time (vLLM's own span has the engine's TTFT).
    assert "gen_ai.response.time_to_first_chunk" not in attrs
    assert "inferwatch.response.time_per_output_token" not in attrs
    assert attrs["inferwatch.logprobs.tokens"] == 4
    assert attrs["inferwatch.logprobs.min"] == -3.0
    assert attrs["inferwatch.logprobs.low_confidence_share"] == 0.25  # -3.0 < ln(0.1)
    assert span.status.status_code == StatusCode.UNSET


def test_captured_text_is_redacted(stack: Stack) -> None:
    stack.http.post("/v1/chat/completions", json=chat())
    attrs = attrs_of(stack.only_span())
    prompt = orjson.loads(str(attrs["gen_ai.input.messages"]))
    completion = orjson.loads(str(attrs["gen_ai.output.messages"]))
    assert prompt[0] == {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
    assert prompt[1]["parts"][0]["content"] == "Mail [REDACTED:EMAIL] about card [REDACTED:CARD]"
    assert completion[0]["parts"][0]["content"] == "Write to [REDACTED:EMAIL] today."
    assert completion[0]["finish_reason"] == "length"
    assert "example" not in str(attrs)


def test_client_asking_for_logprobs_gets_them(stack: Stack) -> None:
    body = stack.http.post("/v1/chat/completions", json=chat(logprobs=True)).json()
    assert len(body["choices"][0]["logprobs"]["content"]) == 4


def test_streamed_chat_relays_chunks_and_hides_the_usage_chunk(stack: Stack) -> None:
    with stack.http.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == TEXT
    assert all(c["choices"] for c in chunks), "the usage-only chunk reached the client"
    assert all(c["choices"][0].get("logprobs") is None for c in chunks)
    _, sent = stack.sent_upstream()
    assert sent["stream_options"] == {"include_usage": True}

    attrs = attrs_of(stack.only_span())
    assert attrs["gen_ai.usage.output_tokens"] == len(WORDS)  # from the hidden usage chunk
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < 2
    assert attrs["inferwatch.response.time_per_output_token"] >= 0
    assert attrs["inferwatch.logprobs.tokens"] == len(WORDS)


def test_streamed_usage_is_kept_when_the_client_asked(stack: Stack) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    with stack.http.stream("POST", "/v1/chat/completions", json=body) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    usage = [orjson.loads(e) for e in events[:-1] if not orjson.loads(e)["choices"]]
    assert usage and usage[0]["usage"]["completion_tokens"] == len(WORDS)


@pytest.mark.parametrize("stream", [False, True])
def test_text_completions(stack: Stack, stream: bool) -> None:
    request = {"model": "ok", "prompt": "Say hi", "max_tokens": 5, "stream": stream}
    if stream:
        with stack.http.stream("POST", "/v1/completions", json=request) as response:
            text = "".join(
                orjson.loads(line[6:])["choices"][0]["text"]
                for line in response.iter_lines()
                if line.startswith("data: {")
            )
    else:
        text = stack.http.post("/v1/completions", json=request).json()["choices"][0]["text"]
    assert text == TEXT
    span = stack.only_span()
    assert span.name == "text_completion ok"
    attrs = attrs_of(span)
    assert attrs["gen_ai.operation.name"] == "text_completion"
    assert attrs["inferwatch.logprobs.tokens"] == 4
    assert orjson.loads(str(attrs["gen_ai.input.messages"]))[0]["parts"][0]["content"] == "Say hi"
    _, sent = stack.sent_upstream()
    assert sent["logprobs"] == 1


def test_upstream_error_is_passed_through_and_marks_the_span(stack: Stack) -> None:
    response = stack.http.post("/v1/chat/completions", json=chat("error500"))
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "engine crashed"
    span = stack.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "engine crashed"
    assert attrs_of(span)["error.type"] == "500"


def test_upstream_timeout_is_504(stack: Stack) -> None:
    response = stack.http.post("/v1/chat/completions", json=chat("slow"))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert TRACE_ID_HEADER in response.headers
    assert (attrs_of(stack.only_span()))["error.type"] == "timeout"


def test_upstream_down_is_503() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        for stack in run_stack(ServingSettings(), upstream_url=dead):
            response = stack.http.post("/v1/chat/completions", json=chat())
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "upstream_unavailable"
            assert stack.only_span().status.status_code == StatusCode.ERROR
            assert stack.http.get("/readyz").status_code == 503


def test_stream_cut_by_upstream_ends_with_an_error_event(stack: Stack) -> None:
    with stack.http.stream(
        "POST", "/v1/chat/completions", json=chat("disconnect", stream=True)
    ) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_disconnected"
    span = stack.only_span()
    assert span.status.status_code == StatusCode.ERROR
    assert attrs_of(span)["error.type"] == "upstream_disconnected"


def test_malformed_events_are_relayed_and_counted(stack: Stack) -> None:
    with stack.http.stream(
        "POST", "/v1/chat/completions", json=chat("malformed", stream=True)
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "data: {this is not json" in lines and lines[-1] == "data: [DONE]"
    attrs = attrs_of(stack.only_span())
    assert attrs["inferwatch.stream.malformed_events"] == 1
    assert attrs["gen_ai.usage.output_tokens"] == len(WORDS)


def test_client_disconnect_cancels_upstream_and_marks_the_span_aborted(stack: Stack) -> None:
    with stack.http.stream(
        "POST", "/v1/chat/completions", json=chat("endless", stream=True)
    ) as response:
        for line in response.iter_lines():
            if '"content":"Write "' in line:
                break  # leave mid-stream
    assert stack.upstream.cancelled.wait(10), "vLLM kept generating for a client that left"
    attrs = attrs_of(stack.only_span())
    assert attrs["inferwatch.aborted"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("aborted",)


def test_client_leaving_before_a_whole_answer_cancels_upstream(stack: Stack) -> None:
    with pytest.raises(httpx.ReadTimeout):
        stack.http.post("/v1/chat/completions", json=chat("slow"), timeout=0.3)
    assert stack.upstream.cancelled.wait(10), "vLLM kept working for a client that left"
    attrs = attrs_of(stack.only_span())
    assert attrs["inferwatch.aborted"] is True
    assert attrs["gen_ai.response.finish_reasons"] == ("aborted",)
    metrics = stack.http.get("/metrics").text
    assert 'inferwatch_gateway_requests_total{operation="chat",outcome="aborted"} 1.0' in metrics


def test_bad_input(stack: Stack) -> None:
    bad_json = stack.http.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    assert stack.http.post("/v1/chat/completions", json=[1, 2]).status_code == 400
    assert stack.upstream.requests == []


def test_input_over_the_limit_is_413() -> None:
    for stack in run_stack(ServingSettings(max_input_bytes=1000)):
        response = stack.http.post("/v1/chat/completions", json=chat(extra="x" * 2000))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert stack.upstream.requests == []


def test_capture_off_records_no_text() -> None:
    for stack in run_stack(ServingSettings(capture="off")):
        stack.http.post("/v1/chat/completions", json=chat())
        attrs = attrs_of(stack.only_span())
        assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
        assert attrs["gen_ai.usage.output_tokens"] == 4


def test_models_health_and_readiness(stack: Stack) -> None:
    assert stack.http.get("/v1/models").json()["data"][0]["id"] == "ok"
    assert stack.http.get("/healthz").json() == {"status": "ok"}
    assert stack.http.get("/readyz").json()["status"] == "ready"
    metrics = stack.http.get("/metrics").text
    assert "inferwatch_gateway_requests_total" in metrics
