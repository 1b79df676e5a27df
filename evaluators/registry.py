"""Every evaluator InferWatch ships, and which of them run on this host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluators.base import Evaluator
from evaluators.grounding import GroundingEvaluator
from evaluators.judge import JudgeEvaluator
from evaluators.toxicity import ToxicityEvaluator
from inferwatch.settings import EvaluatorSettings


def shipped(settings: EvaluatorSettings, vllm_url: str) -> list[Evaluator]:
    """Every evaluator, configured; ``vllm_url`` is the bundled vLLM (the judge's default)."""
    judge = JudgeEvaluator(
        settings.judge_url or f"{vllm_url.rstrip('/')}/v1",
        model=settings.judge_model,
        enabled=settings.judge,
    )
    return [ToxicityEvaluator(), GroundingEvaluator(), judge]


@dataclass(frozen=True)
class Availability:
    evaluator: Evaluator
    problem: str | None  # why it cannot run here; None when it can


def survey(evaluators: Sequence[Evaluator]) -> list[Availability]:
    return [Availability(e, e.unavailable()) for e in evaluators]


def select(enabled: Sequence[str], evaluators: Sequence[Evaluator]) -> list[Evaluator]:
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
