"""Hallucination, tier 3: self-consistency, in the manner of SelfCheckGPT.

The request's own messages are sent again to the model (the bundled vLLM by
default, called untraced) for ``samples`` extra answers at temperature 1.
What a model knows comes back in most samples; what it made up changes from
one sample to the next. Each sample is used as the reference of the grounding
tier's lexical check (content words and word pairs of the answer that the
sample lacks), and the risk is the mean over the samples. The evidence is
the answer's content words that no sample contains.

It needs no context, so it covers the requests the grounding tier must skip,
but it costs ``samples`` generations per request: off by default, with a
small per-minute budget when on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from evaluators.base import Input, Record, Result
from evaluators.endpoint import Endpoint, concurrently, untraced
from evaluators.grounding import STOPWORDS, stem, support, words

THRESHOLD = 0.5
SAMPLES = 4


def request_messages(record: Record) -> list[dict[str, str]]:
    """The messages to ask again: as captured, else the context and prompt as two messages."""
    if record.messages:
        return list(record.messages)
    asked = [{"role": "user", "content": record.prompt or ""}]
    return [{"role": "system", "content": record.context}, *asked] if record.context else asked


def sample_budget(answer: str, cap: int) -> int:
    """Tokens per extra sample: room for the answer (≈1.5 tokens a word) and at least 64, so
    a short answer is compared with whole samples, not with their first words; capped."""
    return min(cap, max(64, 2 * len(answer.split()) + 8))


def disagreement(answer: str, samples: Sequence[str]) -> tuple[float, list[dict[str, Any]]]:
    """The mean lexical risk of ``answer`` against each sample, and the evidence."""
    if not samples:
        raise ValueError("no samples to compare the answer with")
    risk = sum(support(answer, sample)[0] for sample in samples) / len(samples)
    seen = {stem(w) for sample in samples for w, _, _ in words(sample)}
    alone = [
        {"kind": "unrepeated", "start": start, "end": end, "text": answer[start:end]}
        for w, start, end in words(answer)
        if w not in STOPWORDS and stem(w) not in seen
    ]
    return risk, alone


class SelfConsistencyEvaluator:
    name = "hallucination-consistency"
    version = "1"
    needs = frozenset({Input.COMPLETION, Input.PROMPT})
    cheap = False
    budget_per_minute: int | None = 10

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        enabled: bool = False,
        samples: int = SAMPLES,
        temperature: float = 1.0,
        max_tokens: int = 256,
        timeout_s: float = 120.0,
        threshold: float = THRESHOLD,
    ) -> None:
        self.base_url, self.enabled, self.threshold = base_url, enabled, threshold
        self.samples, self.temperature, self.max_tokens = samples, temperature, max_tokens
        self.endpoint = Endpoint(base_url, model=model, timeout_s=timeout_s)

    def unavailable(self) -> str | None:
        if not self.enabled:
            return "off (INFERWATCH_EVALUATORS__CONSISTENCY=true turns it on)"
        return None

    def score(self, records: Sequence[Record]) -> list[Result]:
        # Records that asked the same thing (with the same budget) share their samples.
        asks = [
            (sample_budget(r.completion or "", self.max_tokens), request_messages(r))
            for r in records
        ]
        keys = [orjson.dumps(ask) for ask in asks]
        unique = dict(zip(keys, asks, strict=True))
        sampled = concurrently(lambda ask: self.sample(ask[1], ask[0]), list(unique.values()))
        answers = dict(zip(unique, sampled, strict=True))
        return [
            self._result(r.completion or "", answers[key])
            for r, key in zip(records, keys, strict=True)
        ]

    def _result(self, answer: str, samples: list[str]) -> Result:
        risk, evidence = disagreement(answer, samples)
        flagged = risk >= self.threshold
        alone = [e["text"] for e in evidence][:5]
        return Result(
            score=risk,
            flagged=flagged,
            label="inconsistent" if flagged else "consistent",
            explanation=(
                f"{len(samples)} samples of {self.endpoint.model}; "
                f"in no sample: {', '.join(alone) or 'nothing'}"
            ),
            evidence=[*evidence, {"kind": "samples", "texts": samples}],
        )

    def sample(self, messages: list[dict[str, str]], max_tokens: int) -> list[str]:
        reply = self.endpoint.client.chat.completions.create(
            model=self.endpoint.model,
            messages=messages,  # type: ignore[arg-type]
            n=self.samples,
            temperature=self.temperature,
            max_tokens=max_tokens,
            extra_headers=untraced(),
        )
        return [c.message.content or "" for c in reply.choices]
