"""Token confidence: the gateway's log-probability summary, read back and scored."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest

from evaluators.base import Record
from evaluators.confidence import ConfidenceEvaluator, risk, summary
from evaluators.sampling import Policy
from inferwatch.store.database import Database
from serving.genai import LogprobStats
from tests.collector.conftest import rows
from tests.evaluators.test_worker import T0, Clock, sampler_for, worker_for
from tests.seed import chat_texts, requests_at, store_requests


def test_risk_is_one_minus_the_geometric_mean_probability() -> None:
    assert risk(0.0) == 0.0
    assert risk(math.log(0.5)) == pytest.approx(0.5)
    assert risk(-1e9) == pytest.approx(1.0)
    assert risk(0.1) == 0.0  # rounding above 0 is still certainty


def test_token_logprobs_are_summarised_as_the_gateway_summarises_them() -> None:
    tokens = [-0.1, -3.0, -0.2, float("-inf")]
    stats = LogprobStats()
    for t in tokens:
        stats.add(t)
    got = summary(tokens)
    assert got == {
        "logprob_mean": pytest.approx((-0.1 - 3.0 - 0.2 - 1e9) / 4),
        "logprob_min": -1e9,
        "low_confidence_share": 0.5,
        "logprob_tokens": 4.0,
    }
    assert list(got.values()) == pytest.approx(list(stats.attributes().values()))
    assert summary({"logprob_mean": "-0.5"}) == {"logprob_mean": -0.5}
    with pytest.raises(ValueError, match="unknown log-probability keys \\['mean'\\]"):
        summary({"mean": -0.5})
    with pytest.raises(ValueError, match="must be a number, not 'x'"):
        summary([-0.5, "x"])


def test_a_model_unsure_of_its_tokens_is_flagged() -> None:
    sure = Record(completion="Paris.", logprobs=summary([-0.05, -0.1, -0.02]))
    unsure = Record(completion="Lyon.", logprobs=summary([-2.5, -3.0, -0.3]))
    a, b = ConfidenceEvaluator().score([sure, unsure])
    assert (a.flagged, a.label, b.flagged, b.label) == (False, "sure", True, "unsure")
    assert a.score == pytest.approx(1 - math.exp(-0.17 / 3))
    assert b.explanation == "mean token probability 0.14, 67% of tokens below 0.1"
    assert b.evidence[0]["logprob_min"] == -3.0
    with pytest.raises(ValueError, match="no mean log-probability"):
        ConfidenceEvaluator().score([Record(completion="x", logprobs={"logprob_min": -1.0})])


def test_the_worker_scores_the_summary_the_gateway_put_on_the_span(db: Database) -> None:
    reqs = requests_at(T0, 3)
    # The first two carry the gateway's summary; the third was not asked for logprobs.
    summaries: list[dict[str, float]] = [
        {"inferwatch.logprobs.mean": -0.05, "inferwatch.logprobs.tokens": 3},
        {"inferwatch.logprobs.mean": -2.0, "inferwatch.logprobs.min": -4.0},
        {},
    ]
    store_requests(
        db,
        reqs,
        {
            r.trace_id: {**chat_texts("q?", "an answer"), **a}
            for r, a in zip(reqs, summaries, strict=True)
        },
    )
    clock = Clock(datetime.now(UTC) + timedelta(seconds=15))

    async def scenario() -> None:
        await sampler_for(db, Policy(("hallucination-confidence",)), clock).sample(clock.now)
        await worker_for(db, [ConfidenceEvaluator()], clock).work_once()
        await db.async_engine.dispose()

    asyncio.run(scenario())
    got = {
        r["trace_id"]: r
        for r in rows(db, "SELECT trace_id, score, flagged FROM evaluations ORDER BY trace_id")
    }
    first, second, third = (r.trace_id.hex() for r in reqs)
    assert got[first]["score"] == pytest.approx(1 - math.exp(-0.05))
    assert got[first]["flagged"] is False
    assert got[second]["flagged"] is True
    assert third not in got
    states = rows(db, "SELECT trace_id, state FROM evaluation_jobs")
    assert {r["trace_id"]: r["state"] for r in states}[third] == "skipped"
