"""Hallucination, tier 1: how sure the model was of its own tokens.

The gateway asks vLLM for each generated token's log-probability and records
a summary on its span (``inferwatch.logprobs.*``: mean, minimum, the share of
tokens below ln 0.1, the token count), so this tier costs nothing more: no
model, no call. The risk is one minus the geometric mean of the tokens'
probabilities, ``1 - exp(mean log-probability)``: a model that was guessing
spreads its probability and the mean falls. The evidence is the summary.

A weak signal on its own (measured in ``bench/eval_quality.py``: a confident
model can be confidently wrong), but it is there for every captured request,
with or without context, which is what makes it worth having.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evaluators.base import Input, Record, Result
from serving import genai

THRESHOLD = 0.8  # flagged: the geometric mean token probability is below 0.2
# Record.logprobs: the worker reads them from the gateway's ``inferwatch.logprobs.*``.
MEAN, MINIMUM, LOW_SHARE, TOKENS = KEYS = (
    "logprob_mean",
    "logprob_min",
    "low_confidence_share",
    "logprob_tokens",
)

# The gateway's span attribute behind each key.
ATTRIBUTES = dict(
    zip(
        (genai.LOGPROB_MEAN, genai.LOGPROB_MIN, genai.LOGPROB_LOW_SHARE, genai.LOGPROB_COUNT),
        KEYS,
        strict=True,
    )
)


def summary(logprobs: Iterable[Any] | Mapping[str, Any]) -> dict[str, float]:
    """``Record.logprobs`` from per-token log-probabilities, summarised exactly as the gateway
    does, or from a summary already keyed like ``KEYS``. Raises ``ValueError`` otherwise."""
    if isinstance(logprobs, Mapping):
        unknown = sorted(set(logprobs) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown log-probability keys {unknown}; expected {list(KEYS)}")
        return {key: float(value) for key, value in logprobs.items()}
    stats = genai.LogprobStats()
    for value in logprobs:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"a token log-probability must be a number, not {value!r}")
        stats.add(value)
    return {ATTRIBUTES[name]: float(value) for name, value in stats.attributes().items()}


def risk(mean_logprob: float) -> float:
    """One minus the geometric mean of the token probabilities."""
    return 1.0 - math.exp(min(0.0, mean_logprob))


class ConfidenceEvaluator:
    name = "hallucination-confidence"
    version = "1"
    needs = frozenset({Input.LOGPROBS})
    cheap = True
    budget_per_minute: int | None = None

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold

    def unavailable(self) -> str | None:
        return None

    def score(self, records: Sequence[Record]) -> list[Result]:
        results = []
        for r in records:
            if MEAN not in r.logprobs:
                raise ValueError(f"no mean log-probability in {sorted(r.logprobs)}")
            score = risk(r.logprobs[MEAN])
            flagged = score >= self.threshold
            low = r.logprobs.get(LOW_SHARE)
            results.append(
                Result(
                    score=score,
                    flagged=flagged,
                    label="unsure" if flagged else "sure",
                    explanation=(
                        f"mean token probability {1 - score:.2f}"
                        + (f", {low:.0%} of tokens below 0.1" if low is not None else "")
                    ),
                    evidence=[{"kind": "logprobs", **r.logprobs}],
                )
            )
        return results
