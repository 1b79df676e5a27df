"""Lifting LLM facts from attributes: pure, no database."""

from __future__ import annotations

import orjson
import pytest

from collector.genai import NOT_LLM, lift, render_messages, tpot_ms


@pytest.mark.parametrize(
    ("e2e", "ttft", "tokens", "expected"),
    [
        (1000.0, 200.0, 5, 200.0),
        (1000.0, 200.0, 2, 800.0),
        (1000.0, 200.0, 1, None),  # a single token has no "per output token" time
        (1000.0, 200.0, 0, None),
        (1000.0, None, 5, None),
        (None, 200.0, 5, None),
        (100.0, 200.0, 5, None),  # inconsistent clocks: refuse to invent a negative TPOT
    ],
)
def test_tpot(
    e2e: float | None, ttft: float | None, tokens: int | None, expected: float | None
) -> None:
    assert tpot_ms(e2e, ttft, tokens) == expected


def test_vllm_llm_request_span() -> None:
    facts = lift(
        {
            "gen_ai.response.model": "m",
            "gen_ai.request.id": "cmpl-9",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 21,
            "gen_ai.latency.time_in_queue": 0.01,
            "gen_ai.latency.time_to_first_token": 0.2,
            "gen_ai.latency.e2e": 1.2,
            "gen_ai.latency.time_in_model_prefill": 0.15,
            "gen_ai.latency.time_in_model_decode": 0.95,
        },
        "llm_request",
        duration_ms=1300.0,
    )
    assert facts.is_llm
    assert (facts.provider, facts.model, facts.request_id) == ("vllm", "m", "cmpl-9")
    assert (facts.input_tokens, facts.output_tokens) == (10, 21)
    assert facts.queue_ms == pytest.approx(10)
    assert facts.ttft_ms == pytest.approx(200)
    assert facts.e2e_ms == pytest.approx(1200)  # vLLM's own e2e wins over the span duration
    assert facts.prefill_ms == pytest.approx(150)
    assert facts.decode_ms == pytest.approx(950)
    assert facts.tpot_ms == pytest.approx(50)


def test_semconv_names_win_over_older_ones() -> None:
    facts = lift(
        {
            "gen_ai.provider.name": "new",
            "gen_ai.system": "old",
            "gen_ai.response.model": "resp",
            "gen_ai.request.model": "req",
            "gen_ai.usage.input_tokens": 3,
            "gen_ai.usage.prompt_tokens": 99,
            "gen_ai.response.finish_reasons": ["stop", "length"],
        },
        "chat",
        duration_ms=10.0,
    )
    assert (facts.provider, facts.model, facts.input_tokens) == ("new", "resp", 3)
    assert facts.finish_reason == "stop,length"
    assert facts.e2e_ms == 10.0


def test_numbers_as_strings_and_garbage() -> None:
    facts = lift(
        {
            "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": "12",
            "gen_ai.usage.output_tokens": -4,
            "gen_ai.latency.time_in_queue": "soon",
            "gen_ai.response.time_to_first_chunk": True,
        },
        "x",
        duration_ms=1.0,
    )
    assert facts.input_tokens == 12
    assert facts.output_tokens is None
    assert facts.queue_ms is None
    assert facts.ttft_ms is None


@pytest.mark.parametrize("operation", ["invoke_agent", "execute_tool", "create_agent"])
def test_non_model_operations_are_not_llm_requests(operation: str) -> None:
    assert (
        lift({"gen_ai.operation.name": operation, "gen_ai.request.model": "m"}, "x", 1.0) is NOT_LLM
    )


def test_plain_spans_are_not_llm() -> None:
    assert lift({"http.method": "GET"}, "GET /", 1.0) is NOT_LLM


def test_openinference_kinds() -> None:
    assert (
        lift({"openinference.span.kind": "RETRIEVER", "llm.model_name": "m"}, "r", 1.0) is NOT_LLM
    )
    embedding = lift(
        {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "e"}, "e", 1.0
    )
    assert embedding.is_llm and embedding.operation == "embeddings"


def test_openllmetry_flattened_prompt_and_completion() -> None:
    facts = lift(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "m",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hello",
        },
        "openai.chat",
        1.0,
    )
    assert (facts.prompt, facts.completion) == ("hi", "hello")


def test_render_messages_shapes() -> None:
    assert render_messages("plain") == "plain"
    assert render_messages([{"role": "user", "content": "only"}]) == "only"
    assert (
        render_messages(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {}},
                    ],
                },
                {"role": "assistant", "parts": [{"type": "tool_call", "name": "search"}]},
            ]
        )
        == "user: look\n[image_url]\nassistant: [tool_call search]"
    )
    assert render_messages([]) is None


def test_structured_messages_attribute() -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "q"}]}]
    as_string = lift(
        {"gen_ai.operation.name": "chat", "gen_ai.input.messages": orjson.dumps(messages).decode()},
        "c",
        1.0,
    )
    as_value = lift({"gen_ai.operation.name": "chat", "gen_ai.input.messages": messages}, "c", 1.0)
    assert as_string.prompt == as_value.prompt == "q"


def test_unparseable_messages_json_is_kept_as_text() -> None:
    facts = lift({"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[not json"}, "c", 1)
    assert facts.prompt == "[not json"
