"""OpenAI requests and responses as GenAI span attributes: pure functions and one observer.

Attribute names follow the OpenTelemetry GenAI semantic conventions where they
exist (``gen_ai.*``); the log-prob summary, which they do not cover, is under
``inferwatch.logprobs.*``. Text is captured as semconv message lists
(``[{"role": ..., "parts": [{"type": "text", "content": ...}]}]``), redacted
before it is set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

PROVIDER = "vllm"
CHAT = "chat"
TEXT_COMPLETION = "text_completion"
# A token whose log-probability is below this (p < 0.1) counts as low-confidence.
DEFAULT_LOW_CONFIDENCE_LOGPROB = math.log(0.1)

ATTR_TTFT = "gen_ai.response.time_to_first_chunk"  # seconds, as the collector reads it
ATTR_TPOT = "inferwatch.response.time_per_output_token"  # seconds
LOGPROB_MEAN = "inferwatch.logprobs.mean"
LOGPROB_MIN = "inferwatch.logprobs.min"
LOGPROB_LOW_SHARE = "inferwatch.logprobs.low_confidence_share"
LOGPROB_COUNT = "inferwatch.logprobs.tokens"


def request_attributes(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER,
    }
    model = body.get("model")
    if isinstance(model, str):
        attrs["gen_ai.request.model"] = model
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    for name, value in (
        ("max_tokens", max_tokens),
        ("temperature", body.get("temperature")),
        ("top_p", body.get("top_p")),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[f"gen_ai.request.{name}"] = value
    return attrs


def input_messages(
    operation: str, body: dict[str, Any], redact: Callable[[str], str]
) -> list[dict[str, Any]]:
    if operation == CHAT:
        out = []
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                out.append(
                    {
                        "role": str(message.get("role", "user")),
                        "parts": _parts(message.get("content"), redact),
                    }
                )
        return out
    prompt = body.get("prompt")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    return [
        {"role": "user", "parts": [{"type": "text", "content": redact(p)}]}
        for p in prompts
        if isinstance(p, str)
    ]


def _parts(content: Any, redact: Callable[[str], str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": redact(content)}]
    parts = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append({"type": "text", "content": redact(part["text"])})
        elif isinstance(part, dict):
            parts.append({"type": str(part.get("type", "unknown"))})
    return parts


@dataclass
class LogprobStats:
    low_threshold: float = DEFAULT_LOW_CONFIDENCE_LOGPROB
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    low: int = 0

    def add(self, logprob: Any) -> None:
        if not isinstance(logprob, int | float) or isinstance(logprob, bool):
            return
        value = float(logprob)
        if not math.isfinite(value):  # -inf: the token was impossible under the model
            value = -1e9
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        if value < self.low_threshold:
            self.low += 1

    def attributes(self) -> dict[str, Any]:
        if self.count == 0:
            return {}
        return {
            LOGPROB_MEAN: self.total / self.count,
            LOGPROB_MIN: self.minimum,
            LOGPROB_LOW_SHARE: self.low / self.count,
            LOGPROB_COUNT: self.count,
        }


@dataclass
class ResponseObserver:
    """Watches a response (whole, or chunk by chunk) and rewrites what the client did not ask for.

    ``keep_usage``/``keep_logprobs``: whether the client asked for them itself;
    when not, the gateway asked on its own behalf and removes them again.
    """

    operation: str
    started: float  # time.perf_counter() when the request went upstream
    keep_usage: bool = True
    keep_logprobs: bool = True
    low_logprob: float = DEFAULT_LOW_CONFIDENCE_LOGPROB
    first_token_at: float | None = None
    response_id: str | None = None
    model: str | None = None
    usage: dict[str, Any] | None = None
    finish_reasons: dict[int, str] = field(default_factory=dict)
    texts: dict[int, list[str]] = field(default_factory=dict)
    malformed_events: int = 0
    logprobs: LogprobStats = field(init=False)

    def __post_init__(self) -> None:
        self.logprobs = LogprobStats(self.low_logprob)

    def chunk(self, data: str) -> str | None:
        """One streamed ``data:`` payload; returns what to send instead (None: drop it).
        Unchanged payloads are returned as the same object."""
        if data.strip() == "[DONE]":
            return data
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.malformed_events += 1
            return data
        if not isinstance(payload, dict):
            self.malformed_events += 1
            return data
        changed = self._observe(payload, streaming=True)
        choices = payload.get("choices")
        if payload.get("usage") and not self.keep_usage:
            if not choices:
                return None  # the extra usage-only chunk the gateway asked for
            payload["usage"] = None
            changed = True
        return orjson.dumps(payload).decode() if changed else data

    def whole(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A non-streamed response body; returned, changed where needed."""
        self._observe(payload, streaming=False)
        return payload

    def _observe(self, payload: dict[str, Any], *, streaming: bool) -> bool:
        changed = False
        if isinstance(payload.get("id"), str):
            self.response_id = payload["id"]
        if isinstance(payload.get("model"), str):
            self.model = payload["model"]
        if isinstance(payload.get("usage"), dict):
            self.usage = payload["usage"]
        for choice in payload.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0) if isinstance(choice.get("index"), int) else 0
            text = _choice_text(self.operation, choice, streaming)
            if text:
                if streaming and self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                self.texts.setdefault(index, []).append(text)
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reasons[index] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                self._add_logprobs(logprobs)
                if not self.keep_logprobs:
                    choice["logprobs"] = None
                    changed = True
        return changed

    def _add_logprobs(self, logprobs: dict[str, Any]) -> None:
        content = logprobs.get("content")  # chat
        if isinstance(content, list):
            for token in content:
                if isinstance(token, dict):
                    self.logprobs.add(token.get("logprob"))
        token_logprobs = logprobs.get("token_logprobs")  # completions
        if isinstance(token_logprobs, list):
            for value in token_logprobs:
                self.logprobs.add(value)

    def output_text(self) -> dict[int, str]:
        return {i: "".join(parts) for i, parts in sorted(self.texts.items())}

    def response_attributes(self, *, finished: float) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.response_id:
            attrs["gen_ai.response.id"] = self.response_id
        if self.model:
            attrs["gen_ai.response.model"] = self.model
        if self.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = [
                self.finish_reasons[i] for i in sorted(self.finish_reasons)
            ]
        usage = self.usage or {}
        input_tokens, output_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(input_tokens, int):
            attrs["gen_ai.usage.input_tokens"] = input_tokens
        if isinstance(output_tokens, int):
            attrs["gen_ai.usage.output_tokens"] = output_tokens
        if self.first_token_at is not None:
            ttft = self.first_token_at - self.started
            attrs[ATTR_TTFT] = ttft
            if isinstance(output_tokens, int) and output_tokens > 1:
                attrs[ATTR_TPOT] = (finished - self.first_token_at) / (output_tokens - 1)
        if self.malformed_events:
            attrs["inferwatch.stream.malformed_events"] = self.malformed_events
        attrs.update(self.logprobs.attributes())
        return attrs

    def output_messages(self, redact: Callable[[str], str]) -> list[dict[str, Any]]:
        return [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": redact(text)}],
                **({"finish_reason": self.finish_reasons[i]} if i in self.finish_reasons else {}),
            }
            for i, text in self.output_text().items()
        ]


def _choice_text(operation: str, choice: dict[str, Any], streaming: bool) -> str:
    if operation == TEXT_COMPLETION:
        text = choice.get("text")
    else:
        message = choice.get("delta" if streaming else "message")
        text = message.get("content") if isinstance(message, dict) else None
    return text if isinstance(text, str) else ""
