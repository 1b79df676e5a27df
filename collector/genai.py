"""Lifting LLM facts out of a span's attributes, across three naming families.

Pure functions of the attribute dict (see the table in ARCHITECTURE.md):
OpenTelemetry GenAI semantic conventions, vLLM's ``llm_request`` span
(``gen_ai.latency.*`` in seconds, ``gen_ai.usage.prompt_tokens``), and
OpenInference (``llm.*``, ``input.value``). For each fact the first name found,
in the order listed, wins. Nothing here drops an attribute: the caller keeps
the whole dict as well.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import orjson

OPERATION = ("gen_ai.operation.name",)
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
# Seconds. The first is the semconv client attribute the gateway sets; the
# second is vLLM's own measurement; the third an alias some SDKs emit.
TTFT_S = (
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.latency.time_to_first_token",
    "gen_ai.response.time_to_first_token",
)
E2E_S = ("gen_ai.latency.e2e",)
QUEUE_S = ("gen_ai.latency.time_in_queue",)
PREFILL_S = ("gen_ai.latency.time_in_model_prefill",)
DECODE_S = ("gen_ai.latency.time_in_model_decode",)
FINISH_REASONS = ("gen_ai.response.finish_reasons", "gen_ai.response.finish_reason")
REQUEST_ID = ("gen_ai.response.id", "gen_ai.request.id")
PROMPT = ("gen_ai.input.messages", "gen_ai.prompt", "input.value")
COMPLETION = ("gen_ai.output.messages", "gen_ai.completion", "output.value")
# Flattened message lists: OpenInference and OpenLLMetry. A span has such a
# list when its first message has one of the keys in the second tuple.
PROMPT_PREFIXES = ("llm.input_messages.", "gen_ai.prompt.")
COMPLETION_PREFIXES = ("llm.output_messages.", "gen_ai.completion.")
_FIRST_MESSAGE_FIELDS = ("0.message.content", "0.message.role", "0.content", "0.role")
_PROMPT_SENTINELS = frozenset(p + f for p in PROMPT_PREFIXES for f in _FIRST_MESSAGE_FIELDS)
_COMPLETION_SENTINELS = frozenset(p + f for p in COMPLETION_PREFIXES for f in _FIRST_MESSAGE_FIELDS)
# Any of these marks a span carrying vLLM's own request timings.
VLLM_ENGINE_ATTRIBUTES = frozenset({*QUEUE_S, *E2E_S, "gen_ai.latency.time_to_first_token"})
OPENINFERENCE_KIND = "openinference.span.kind"

# Operations that are not a call to a model (agents, tools, retrieval): such a
# span is not an LLM request even when it carries a model name or token sums.
NON_MODEL_OPERATIONS = frozenset(
    {"execute_tool", "invoke_agent", "create_agent", "invoke_workflow", "retrieval"}
)
OPENINFERENCE_OPERATIONS = {"LLM": "chat", "EMBEDDING": "embeddings"}


class LlmFacts(NamedTuple):  # a NamedTuple: built for every span, and cheap to build
    is_llm: bool
    operation: str | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    queue_ms: float | None = None
    prefill_ms: float | None = None
    decode_ms: float | None = None
    finish_reason: str | None = None
    request_id: str | None = None
    prompt: str | None = None
    completion: str | None = None


NOT_LLM = LlmFacts(is_llm=False)


def tpot_ms(e2e_ms: float | None, ttft_ms: float | None, output_tokens: int | None) -> float | None:
    """Time per output token after the first: (e2e - TTFT) / (output tokens - 1)."""
    if e2e_ms is None or ttft_ms is None or output_tokens is None or output_tokens < 2:
        return None
    if e2e_ms < ttft_ms:
        return None
    return (e2e_ms - ttft_ms) / (output_tokens - 1)


def lift(attrs: dict[str, Any], span_name: str, duration_ms: float) -> LlmFacts:
    """The LLM facts of one span; ``NOT_LLM`` for spans that are not a model call."""
    operation = _text(attrs, OPERATION)
    oi_kind = attrs.get(OPENINFERENCE_KIND)
    if operation in NON_MODEL_OPERATIONS:
        return NOT_LLM
    if isinstance(oi_kind, str):
        if oi_kind.upper() not in OPENINFERENCE_OPERATIONS:
            return NOT_LLM
        operation = operation or OPENINFERENCE_OPERATIONS[oi_kind.upper()]
    provider = _text(attrs, PROVIDER)
    model = _text(attrs, MODEL)
    input_tokens = _count(attrs, INPUT_TOKENS)
    output_tokens = _count(attrs, OUTPUT_TOKENS)
    ttft = _ms(attrs, TTFT_S)
    queue = _ms(attrs, QUEUE_S)
    engine_facts = not VLLM_ENGINE_ATTRIBUTES.isdisjoint(attrs)
    if provider is None and engine_facts:
        provider = "vllm"
    is_llm = (
        operation is not None
        or model is not None
        or input_tokens is not None
        or output_tokens is not None
        or ttft is not None
        or engine_facts
        or span_name == "llm_request"
    )
    if not is_llm:
        return NOT_LLM
    e2e = _ms(attrs, E2E_S)
    if e2e is None:
        e2e = duration_ms
    return LlmFacts(
        is_llm=True,
        operation=operation,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        ttft_ms=ttft,
        tpot_ms=tpot_ms(e2e, ttft, output_tokens),
        e2e_ms=e2e,
        queue_ms=queue,
        prefill_ms=_ms(attrs, PREFILL_S),
        decode_ms=_ms(attrs, DECODE_S),
        finish_reason=_finish_reason(attrs),
        request_id=_text(attrs, REQUEST_ID),
        prompt=_messages_text(attrs, PROMPT, PROMPT_PREFIXES, _PROMPT_SENTINELS),
        completion=_messages_text(attrs, COMPLETION, COMPLETION_PREFIXES, _COMPLETION_SENTINELS),
    )


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def _text(attrs: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value if type(value) is str else str(value)
    return None


def _number(value: Any) -> float | None:
    """A finite, non-negative number from an int, float or numeric string; else None."""
    kind = type(value)
    if kind is float or kind is int:  # the usual case, checked first (bool is not int here)
        number = float(value)
    elif kind is str:
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if 0.0 <= number < math.inf else None  # NaN fails both comparisons


def _count(attrs: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = attrs.get(name)
        if value is None:
            continue
        number = _number(value)
        if number is not None and number.is_integer() and number < 2**31:
            return int(number)
    return None


def _ms(attrs: dict[str, Any], names_in_seconds: tuple[str, ...]) -> float | None:
    for name in names_in_seconds:
        value = attrs.get(name)
        if value is None:
            continue
        number = _number(value)
        if number is not None:
            return number * 1000.0
    return None


def _finish_reason(attrs: dict[str, Any]) -> str | None:
    value = _first(attrs, FINISH_REASONS)
    if isinstance(value, list):
        reasons = [str(v) for v in value if v is not None and v != ""]
        return ",".join(reasons) or None
    if value is None:
        output = _parse_json(attrs.get("gen_ai.output.messages"))
        if isinstance(output, list):
            reasons = [
                str(m["finish_reason"])
                for m in output
                if isinstance(m, dict) and m.get("finish_reason")
            ]
            return ",".join(reasons) or None
        return None
    return str(value)


def _parse_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _messages_text(
    attrs: dict[str, Any],
    names: tuple[str, ...],
    prefixes: tuple[str, ...],
    sentinels: frozenset[str],
) -> str | None:
    value = _first(attrs, names)
    if value is not None:
        return render_messages(_parse_json(value))
    if sentinels.isdisjoint(attrs):
        return None  # the common case, decided without scanning every key
    return render_messages(_flattened_messages(attrs, prefixes))


def _flattened_messages(attrs: dict[str, Any], prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    """``llm.input_messages.0.message.content`` / ``gen_ai.prompt.0.content`` as messages."""
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        for prefix in prefixes:
            if not key.startswith(prefix):
                continue
            index, _, field = key[len(prefix) :].partition(".")
            if not index.isdigit():
                continue
            field = field.removeprefix("message.")
            if field in ("role", "content"):
                by_index.setdefault(int(index), {})[field] = value
    return [by_index[i] for i in sorted(by_index)]


def render_messages(value: Any) -> str | None:
    """Readable text of a prompt or completion: one message as its text, several as
    ``role: text`` lines."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return str(value)
    lines: list[tuple[str | None, str]] = []
    for message in value:
        if isinstance(message, dict):
            role = message.get("role")
            lines.append((str(role) if role else None, _message_text(message)))
        elif message is not None:
            lines.append((None, str(message)))
    if not lines:
        return None
    if len(lines) == 1:
        return lines[0][1]
    return "\n".join(f"{role}: {text}" if role else text for role, text in lines)


def _message_text(message: dict[str, Any]) -> str:
    parts = message.get("parts")
    if isinstance(parts, list):  # semconv: [{"type": "text", "content": ...}, ...]
        return "\n".join(_part_text(p) for p in parts if p is not None)
    content = message.get("content")
    if isinstance(content, list):  # OpenAI: [{"type": "text", "text": ...}, ...]
        return "\n".join(_part_text(p) for p in content if p is not None)
    return "" if content is None else str(content)


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return str(part)
    for key in ("content", "text"):
        if isinstance(part.get(key), str):
            return str(part[key])
    kind = part.get("type", "part")
    name = part.get("name")
    return f"[{kind} {name}]" if name else f"[{kind}]"
