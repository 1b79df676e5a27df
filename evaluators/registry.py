"""Every evaluator InferWatch ships, and which of them run on this host."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evaluators.base import Evaluator
from evaluators.confidence import ConfidenceEvaluator
from evaluators.consistency import SelfConsistencyEvaluator
from evaluators.crossencoder import CrossEncoderEvaluator
from evaluators.grounding import GroundingEvaluator
from evaluators.judge import JudgeEvaluator
from evaluators.toxicity import ToxicityEvaluator
from inferwatch.settings import EvaluatorSettings


def shipped(settings: EvaluatorSettings, vllm_url: str) -> list[Evaluator]:
    """Every evaluator, configured; ``vllm_url`` is the bundled vLLM, the default endpoint of
    the evaluators that call a model."""
    bundled = f"{vllm_url.rstrip('/')}/v1"
    return [
        ToxicityEvaluator(),
        ConfidenceEvaluator(),
        GroundingEvaluator(),
        SelfConsistencyEvaluator(
            settings.consistency_url or bundled,
            model=settings.consistency_model,
            enabled=settings.consistency,
            samples=settings.consistency_samples,
        ),
        JudgeEvaluator(
            settings.judge_url or bundled, model=settings.judge_model, enabled=settings.judge
        ),
        CrossEncoderEvaluator(settings.cross_encoder_path),
    ]


@dataclass(frozen=True)
class Availability:
    evaluator: Evaluator
    problem: str | None  # why it cannot run here; None when it can


def survey(evaluators: Sequence[Evaluator]) -> list[Availability]:
    return [Availability(e, e.unavailable()) for e in evaluators]


def select(enabled: Sequence[str], evaluators: Sequence[Evaluator]) -> list[Evaluator]:
    """The evaluators to run: those ``enabled`` (all when empty) that can run here.

    Raises ``ValueError`` naming an enabled evaluator that is unknown or unavailable."""
    return choose(enabled, survey(evaluators))


def choose(enabled: Sequence[str], found: Sequence[Availability]) -> list[Evaluator]:
    """``select`` over evaluators already surveyed."""
    by_name = {a.evaluator.name: a for a in found}
    for name in enabled:
        if name not in by_name:
            raise ValueError(f"unknown evaluator {name!r}; known: {', '.join(sorted(by_name))}")
        if by_name[name].problem is not None:
            raise ValueError(f"evaluator {name} cannot run here: {by_name[name].problem}")
    wanted = set(enabled) or set(by_name)
    return [a.evaluator for a in found if a.evaluator.name in wanted and a.problem is None]


def turned_on(settings: EvaluatorSettings) -> list[str]:
    """The evaluators that are off unless configured, and that these settings turn on."""
    return [
        name
        for name, on in (
            (SelfConsistencyEvaluator.name, settings.consistency),
            (JudgeEvaluator.name, settings.judge),
            (CrossEncoderEvaluator.name, settings.cross_encoder_path is not None),
        )
        if on and (not settings.enabled or name in settings.enabled)
    ]


def configured(settings: EvaluatorSettings, vllm_url: str) -> list[Evaluator]:
    """What a worker runs with these settings: ``select`` over ``shipped``, and an error too
    for an evaluator the settings turn on that cannot run here (a bad model directory must
    not be skipped in silence)."""
    found = survey(shipped(settings, vllm_url))
    chosen = choose(settings.enabled, found)
    problems = {a.evaluator.name: a.problem for a in found}
    for name in turned_on(settings):
        if problems[name] is not None:
            raise ValueError(
                f"evaluator {name} is configured but cannot run here: {problems[name]}"
            )
    return chosen
