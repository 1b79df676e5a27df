"""The LLM judge against a local OpenAI-compatible endpoint, and escalation from a cheap flag."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from evaluators.base import Record
from evaluators.judge import JudgeEvaluator
from evaluators.registry import select, shipped
from evaluators.worker import COSTLY_BATCH
from inferwatch.settings import EvaluatorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import rows
from tests.evaluators.fake_openai import fake_judge
from tests.evaluators.test_worker import Clock, Echo, sampler_for, seed, worker_for
from tests.servers import ServerThread


def test_the_judge_scores_the_probability_of_no_with_a_constrained_reply() -> None:
    app, seen = fake_judge(0.9)
    with ServerThread(app) as url:
        judge = JudgeEvaluator(f"{url}/v1", enabled=True)
        right, wrong = judge.score(
            [
                Record(prompt="Capital?", completion="Paris.", context="Paris is the capital."),
                Record(
                    prompt="Capital?", completion="Lyon, wrong.", context="Paris is the capital."
                ),
            ]
        )
    assert (right.flagged, wrong.flagged) == (False, True)
    assert right.score == pytest.approx(0.1) and wrong.score == pytest.approx(0.9)
    assert wrong.evidence == [{"judge": "judge-model", "reply": "no", "p_no": pytest.approx(0.9)}]
    body = seen[0]
    assert body["model"] == "judge-model"  # the endpoint's first model
    assert body["max_tokens"] == 1 and body["temperature"] == 0.0 and body["logprobs"] is True
    assert body["structured_outputs"] == {"choice": ["yes", "no"]}
    assert "Paris is the capital." in body["messages"][-1]["content"]
    assert body["traceparent"].endswith("-00")  # not sampled: vLLM records no span for it


def test_the_judge_is_off_unless_turned_on_and_budgeted() -> None:
    evaluators = shipped(EvaluatorSettings(), "http://127.0.0.1:8001")
    assert [e.name for e in select([], evaluators)] == [
        "toxicity",
        "hallucination-confidence",
        "hallucination-grounding",
    ]
    with pytest.raises(ValueError, match="hallucination-judge cannot run here: off"):
        select(["hallucination-judge"], evaluators)
    on = shipped(EvaluatorSettings(judge=True), "http://127.0.0.1:8001")
    (judge,) = [e for e in select([], on) if e.name == "hallucination-judge"]
    assert isinstance(judge, JudgeEvaluator)
    assert judge.base_url == "http://127.0.0.1:8001/v1"  # vLLM itself, not the gateway
    assert judge.budget_per_minute == 30


def test_a_cheap_flag_sends_the_request_on_to_the_judge(db: Database) -> None:
    app, seen = fake_judge(0.8)
    seed(db, ["fine answer", "a wrong answer that is long enough to be flagged by echo " * 3])
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))

    class Flagging(Echo):
        def score(self, records):  # type: ignore[no-untyped-def]
            results = super().score(records)
            return [r.__class__(r.score, r.score > 0.5, r.label) for r in results]

    with ServerThread(app) as url:
        judge = JudgeEvaluator(f"{url}/v1", enabled=True)

        async def scenario() -> None:
            # The judge is sampled at rate 0: only the flag sends work its way.
            from evaluators.sampling import Policy

            policy = Policy(("echo", "hallucination-judge"), rates={"hallucination-judge": 0.0})
            await sampler_for(db, policy, clock).sample(clock.now)
            worker = worker_for(db, [Flagging(), judge], clock)
            await worker.work_once()  # echo scores both and flags one
            await worker.work_once()  # the judge takes the flagged one
            await db.async_engine.dispose()

        asyncio.run(scenario())
    jobs = rows(db, "SELECT evaluator, reason, state FROM evaluation_jobs ORDER BY id")
    assert jobs[-1] == {
        "evaluator": "hallucination-judge",
        "reason": "flagged:echo",
        "state": "done",
    }
    assert len(seen) == 1
    (verdict,) = rows(
        db, "SELECT flagged, label FROM evaluations WHERE evaluator = 'hallucination-judge'"
    )
    assert verdict == {"flagged": True, "label": "unsupported"}


def test_flags_are_sent_on_within_the_budget_and_a_few_at_a_time(db: Database) -> None:
    """A model that gets everything wrong must not flood the judge: escalations count against
    its per-minute budget, and costly jobs are claimed one round of calls at a time."""
    app, seen = fake_judge(0.8)
    seed(
        db, [f"a wrong answer, number {i}, long enough for echo to flag it " * 2 for i in range(30)]
    )
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))

    class Flagging(Echo):
        def score(self, records):  # type: ignore[no-untyped-def]
            return [r.__class__(r.score, True, r.label) for r in super().score(records)]

    with ServerThread(app) as url:
        judge = JudgeEvaluator(f"{url}/v1", enabled=True)

        async def scenario() -> None:
            from evaluators.sampling import Policy

            policy = Policy(("echo", "hallucination-judge"), rates={"hallucination-judge": 0.0})
            await sampler_for(db, policy, clock).sample(clock.now)
            worker = worker_for(
                db, [Flagging(), judge], clock, budgets_per_minute={"hallucination-judge": 12}
            )
            assert await worker.work_once() == 30  # echo flags all 30
            assert worker.metrics.over_budget.labels("hallucination-judge")._value.get() == 18
            assert await worker.work_once() == COSTLY_BATCH  # 8 of the 12 judge jobs
            assert await worker.work_once() == 4
            await db.async_engine.dispose()

        asyncio.run(scenario())
    assert len(seen) == 12
    judged = rows(
        db, "SELECT count(*) AS n FROM evaluations WHERE evaluator = 'hallucination-judge'"
    )
    assert judged == [{"n": 12}]
