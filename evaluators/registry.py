"""Every evaluator InferWatch ships, and which of them run on this host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluators.base import Evaluator
from evaluators.grounding import GroundingEvaluator
from evaluators.toxicity import ToxicityEvaluator


def shipped() -> list[Evaluator]:
    return [ToxicityEvaluator(), GroundingEvaluator()]


@dataclass(frozen=True)
class Availability:
    evaluator: Evaluator
    problem: str | None  # why it cannot run here; None when it can


def survey(evaluators: Sequence[Evaluator] | None = None) -> list[Availability]:
    return [Availability(e, e.unavailable()) for e in (evaluators or shipped())]


def select(
    enabled: Sequence[str], evaluators: Sequence[Evaluator] | None = None
) -> list[Evaluator]:
    """The evaluators to run: those ``enabled`` (all when empty) that can run here.

    Raises ``ValueError`` naming an enabled evaluator that is unknown or unavailable."""
    found = survey(evaluators)
    by_name = {a.evaluator.name: a for a in found}
    for name in enabled:
        if name not in by_name:
            raise ValueError(f"unknown evaluator {name!r}; known: {', '.join(sorted(by_name))}")
        if by_name[name].problem is not None:
            raise ValueError(f"evaluator {name} cannot run here: {by_name[name].problem}")
    wanted = set(enabled) or set(by_name)
    return [a.evaluator for a in found if a.evaluator.name in wanted and a.problem is None]
