"""Which requests each evaluator scores: pure decisions from the request's facts.

A request is sampled for an evaluator when an always-rule matches (it failed,
it got negative feedback) or when its trace id falls under the evaluator's
rate. The draw is a hash of the trace id alone, the same in every replica and
nested across evaluators: a request sampled at 1 % is also sampled at 10 %, so
evaluators at different rates score comparable sets. A per-minute budget caps
what the rate lets through (the always-rules are capped too: a flood of
errors must not flood an expensive judge).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

ALWAYS_REASONS = ("error", "negative_feedback")


def draw(trace_id: str) -> float:
    """A uniform number in [0, 1) fixed by the trace id."""
    digest = hashlib.blake2b(trace_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Policy:
    evaluators: tuple[str, ...]
    base_rate: float = 1.0
    rates: Mapping[str, float] | None = None
    budgets_per_minute: Mapping[str, int] | None = None

    def rate(self, evaluator: str) -> float:
        return min(self.base_rate, (self.rates or {}).get(evaluator, self.base_rate))

    def decide(self, trace_id: str, *, failed: bool = False) -> list[tuple[str, str]]:
        """(evaluator, reason) for each evaluator that should score this new request."""
        if failed:
            return [(name, "error") for name in self.evaluators]
        x = draw(trace_id)
        return [(name, "sampled") for name in self.evaluators if x < self.rate(name)]

    def within_budget(self, evaluator: str, used_this_minute: int) -> bool:
        budget = (self.budgets_per_minute or {}).get(evaluator)
        return budget is None or used_this_minute < budget
