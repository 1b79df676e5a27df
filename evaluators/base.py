"""The evaluator interface: what an evaluator needs, whether it can run here, and batch scoring.

Every evaluator scores *risk*: 0 is fine, 1 is certainly a problem (toxic,
unsupported by its context, ...), and ``flagged`` says the score reached the
evaluator's shipped threshold. ``score`` is pure with respect to the database:
the worker fetches the records and writes the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Input(StrEnum):
    COMPLETION = "completion"
    PROMPT = "prompt"
    CONTEXT = "context"  # text the request itself supplied (system/tool/user documents)
    LOGPROBS = "logprobs"  # the gateway's token log-probability summary


@dataclass(frozen=True)
class Record:
    """One LLM request as evaluators see it; any field may be missing (not captured)."""

    trace_id: str = ""
    span_id: str = ""
    model: str | None = None
    prompt: str | None = None
    completion: str | None = None
    context: str | None = None
    # The chat messages as sent (role, text), for evaluators that ask the model again.
    messages: list[dict[str, str]] = field(default_factory=list)
    logprobs: dict[str, float] = field(default_factory=dict)

    def has(self, needed: Input) -> bool:
        if needed is Input.LOGPROBS:
            return bool(self.logprobs)
        return bool(getattr(self, needed.value))


@dataclass(frozen=True)
class Result:
    score: float
    flagged: bool
    label: str
    explanation: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)


class Evaluator(Protocol):
    name: str
    version: str
    needs: frozenset[Input]
    # Cheap evaluators run on every sampled request; others at their own rate or budget,
    # and on requests a cheap evaluator flagged.
    cheap: bool
    # Jobs queued per minute at most (None: no cap), unless the settings set one.
    budget_per_minute: int | None

    def unavailable(self) -> str | None:
        """Why this evaluator cannot run on this host, or None when it can."""
        ...

    def score(self, records: Sequence[Record]) -> list[Result]:
        """One result per record, in order; every record has what ``needs`` names."""
        ...
