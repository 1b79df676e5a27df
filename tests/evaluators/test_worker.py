"""The sampler and workers over real Postgres: no double work, retries, parking, results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from evaluators import queue
from evaluators.base import Input, Record, Result
from evaluators.metrics import EvaluatorMetrics
from evaluators.sampling import Policy
from evaluators.toxicity import ToxicityEvaluator
from evaluators.worker import Sampler, Worker, chat_messages, context_of
from inferwatch.leader import Leadership
from inferwatch.settings import EvaluatorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import rows
from tests.seed import chat_texts, requests_at, store_requests

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ANSWERS = [
    "Paris is the capital of France.",
    "You are a worthless idiot and I hate you.",
    "The meeting moved to Tuesday at 10.",
    "Shut up, moron.",
]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Echo:
    """A stand-in evaluator: the score is the completion's length, capped; fails on 'boom'."""

    name = "echo"
    version = "1"
    needs = frozenset({Input.COMPLETION})
    cheap = True
    budget_per_minute = None

    def __init__(self) -> None:
        self.seen: list[str] = []

    def unavailable(self) -> str | None:
        return None

    def score(self, records: Sequence[Record]) -> list[Result]:
        if any("boom" in (r.completion or "") for r in records):
            raise RuntimeError("boom in the batch")
        self.seen += [r.trace_id for r in records]
        return [Result(min(1.0, len(r.completion or "") / 100), False, "ok") for r in records]


def seed(db: Database, answers: Sequence[str] = ANSWERS, *, at: datetime = T0) -> list[str]:
    """Requests received now (the DB clock), captured with these answers; their trace ids."""
    reqs = requests_at(at, len(answers))
    texts = {
        r.trace_id: chat_texts("q?", a, context="ctx") for r, a in zip(reqs, answers, strict=True)
    }
    store_requests(db, reqs, texts)
    return [r.trace_id.hex() for r in reqs]


def sampler_for(db: Database, policy: Policy, clock: Clock) -> Sampler:
    leadership = Leadership(db.connect_raw)
    return Sampler(
        db, policy, EvaluatorMetrics(CollectorRegistry()), leadership, interval_s=1, clock=clock
    )


def worker_for(db: Database, evaluators: Sequence[Any], clock: Clock, **cfg: Any) -> Worker:
    settings = EvaluatorSettings(**{"batch_size": 64, "lease_s": 60, "max_attempts": 2, **cfg})
    return Worker(db, evaluators, EvaluatorMetrics(CollectorRegistry()), settings, clock=clock)


def test_sampled_requests_get_toxicity_scores(db: Database) -> None:
    traces = seed(db)
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))  # the spans have settled
    policy = Policy(("toxicity",))

    async def scenario() -> None:
        assert await sampler_for(db, policy, clock).sample(clock.now) == 4
        assert await sampler_for(db, policy, clock).sample(clock.now) == 0  # queued once
        assert await worker_for(db, [ToxicityEvaluator()], clock).work_once() == 4
        await db.async_engine.dispose()

    asyncio.run(scenario())
    got = rows(
        db,
        "SELECT trace_id, evaluator, evaluator_version, label, flagged, latency_ms, model "
        "FROM llm_request_evaluations",
    )
    flagged = {r["trace_id"]: r["flagged"] for r in got}
    assert flagged == dict(zip(traces, [False, True, False, True], strict=True))
    assert {(r["evaluator"], r["evaluator_version"]) for r in got} == {("toxicity", "1")}
    assert all(r["latency_ms"] is not None and r["model"] for r in got)
    jobs = rows(db, "SELECT state, reason, attempts FROM evaluation_jobs")
    assert jobs == [{"state": "done", "reason": "sampled", "attempts": 1}] * 4


def test_two_workers_at_once_never_score_a_job_twice(db: Database) -> None:
    seed(db, [f"answer number {i}" for i in range(40)])
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))
    echo_a, echo_b = Echo(), Echo()

    async def scenario() -> None:
        await sampler_for(db, Policy(("echo",)), clock).sample(clock.now)
        a = worker_for(db, [echo_a], clock, batch_size=7)
        b = worker_for(db, [echo_b], clock, batch_size=7)
        while sum(await asyncio.gather(a.work_once(), b.work_once())):
            pass
        await db.async_engine.dispose()

    asyncio.run(scenario())
    assert len(echo_a.seen) + len(echo_b.seen) == 40
    assert not set(echo_a.seen) & set(echo_b.seen)
    assert echo_a.seen and echo_b.seen  # both took their share
    assert rows(db, "SELECT count(*) AS n FROM evaluations") == [{"n": 40}]


def test_a_killed_workers_jobs_are_retried_after_their_lease_then_parked(db: Database) -> None:
    seed(db, ANSWERS[:2])
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))

    async def scenario() -> None:
        await sampler_for(db, Policy(("echo",)), clock).sample(clock.now)
        async with db.async_session() as s:  # a worker claims both, then dies
            jobs = await queue.claim(s, 10, clock.now, timedelta(seconds=60), 2, ["echo"])
        assert len(jobs) == 2
        worker = worker_for(db, [Echo()], clock)
        assert await worker.work_once() == 0  # still leased
        clock.now += timedelta(seconds=61)
        async with db.async_session() as s:  # the second worker dies too
            assert len(await queue.claim(s, 1, clock.now, timedelta(seconds=60), 2, ["echo"])) == 1
        assert await worker.work_once() == 1  # the other job, on its second attempt: done
        clock.now += timedelta(seconds=61)
        assert await worker.work_once() == 0  # two attempts used: parked, not retried
        await db.async_engine.dispose()

    asyncio.run(scenario())
    jobs = rows(db, "SELECT state, attempts, last_error FROM evaluation_jobs ORDER BY id")
    assert sorted((j["state"], j["attempts"]) for j in jobs) == [("done", 2), ("parked", 2)]
    parked = next(j for j in jobs if j["state"] == "parked")
    assert parked["last_error"] == "the worker stopped while scoring it"


def test_a_poison_record_is_parked_alone_and_the_rest_are_scored(db: Database) -> None:
    seed(db, ["fine one", "boom goes this one", "fine two"])
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))

    async def scenario() -> None:
        await sampler_for(db, Policy(("echo",)), clock).sample(clock.now)
        worker = worker_for(db, [Echo()], clock)
        assert await worker.work_once() == 3  # the batch fails; one by one, two succeed
        assert await worker.work_once() == 0  # the failed one waits before its retry
        clock.now += queue.RETRY_BACKOFF
        assert await worker.work_once() == 1  # fails again: second and last attempt
        await db.async_engine.dispose()

    asyncio.run(scenario())
    jobs = rows(db, "SELECT state, attempts, last_error FROM evaluation_jobs ORDER BY id")
    assert [(j["state"], j["attempts"]) for j in jobs] == [("done", 1), ("parked", 2), ("done", 1)]
    assert jobs[1]["last_error"] == "RuntimeError: boom in the batch"
    assert rows(db, "SELECT count(*) AS n FROM evaluations") == [{"n": 2}]


def test_requests_without_a_captured_answer_are_skipped(db: Database) -> None:
    store_requests(db, requests_at(T0, 2))  # no text captured
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))

    async def scenario() -> None:
        await sampler_for(db, Policy(("echo",)), clock).sample(clock.now)
        await worker_for(db, [Echo()], clock).work_once()
        await db.async_engine.dispose()

    asyncio.run(scenario())
    assert rows(db, "SELECT DISTINCT state FROM evaluation_jobs") == [{"state": "skipped"}]


def test_errors_and_negative_feedback_are_always_sampled(db: Database) -> None:
    reqs = requests_at(T0, 3, error_every=3)  # the first fails
    store_requests(db, reqs)
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))
    policy = Policy(("echo",), base_rate=0.0)

    async def scenario() -> None:
        sampler = sampler_for(db, policy, clock)
        assert await sampler.sample(clock.now) == 1  # only the error
        with db.engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(
                text(
                    "INSERT INTO feedback (trace_id, kind, score, normalized, metadata) "
                    "VALUES (:t, 'thumbs', -1, 0, '{}')"
                ),
                {"t": reqs[1].trace_id.hex()},
            )
        clock.now = datetime.now(UTC) + timedelta(seconds=1)
        assert await sampler.sample(clock.now) == 1  # the thumbs-down
        await db.async_engine.dispose()

    asyncio.run(scenario())
    reasons = rows(db, "SELECT trace_id, reason FROM evaluation_jobs ORDER BY id")
    assert [(r["trace_id"], r["reason"]) for r in reasons] == [
        (reqs[0].trace_id.hex(), "error"),
        (reqs[1].trace_id.hex(), "negative_feedback"),
    ]


def test_budgets_hold_back_what_exceeds_them(db: Database) -> None:
    seed(db, [f"a{i}" for i in range(10)])
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))
    policy = Policy(("echo",), budgets_per_minute={"echo": 4})

    async def scenario() -> None:
        sampler = sampler_for(db, policy, clock)
        assert await sampler.sample(clock.now) == 4
        assert sampler.metrics.over_budget.labels("echo")._value.get() == 6
        await db.async_engine.dispose()

    asyncio.run(scenario())


def test_context_is_what_the_request_supplied_besides_its_question() -> None:
    messages = (
        '[{"role": "system", "parts": [{"type": "text", "content": "Doc: the sky is green."}]},'
        ' {"role": "user", "parts": [{"type": "text", "content": "Earlier turn"}]},'
        ' {"role": "assistant", "parts": [{"type": "text", "content": "an answer"}]},'
        ' {"role": "user", "parts": [{"type": "text", "content": "What colour is the sky?"}]}]'
    )
    assert context_of(chat_messages(messages)) == "Doc: the sky is green.\nEarlier turn"
    assert chat_messages(messages)[-1] == {"role": "user", "content": "What colour is the sky?"}
    assert chat_messages(None) == [] and chat_messages("not json") == []
    assert context_of([]) is None
    document = " ".join(["word"] * 60)
    rag = f'[{{"role": "user", "parts": [{{"type": "text", "content": "{document}"}}]}}]'
    assert context_of(chat_messages(rag)) == document  # a document-length question
