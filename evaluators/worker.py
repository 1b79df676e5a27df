"""``inferwatch evaluate``: the sampler queues requests, workers score them into ``evaluations``.

The sampler runs in one process per database (an advisory-lock leader): it
reads new LLM requests and new negative feedback in arrival order from its
cursors, asks the ``Policy`` which evaluators should score each, and queues
jobs. Every worker process claims jobs for the evaluators it has, fetches
the requests, scores them in batches off the event loop and writes the
results; a batch that fails is retried one job at a time, so one bad record
fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from evaluators import confidence, queue
from evaluators.base import Evaluator, Record, Result
from evaluators.endpoint import CONCURRENCY
from evaluators.metrics import EvaluatorMetrics
from evaluators.sampling import Policy
from inferwatch.daemon import Daemon
from inferwatch.leader import LeaderPoller, Leadership
from inferwatch.settings import EvaluatorSettings
from inferwatch.store.database import Database

log = logging.getLogger(__name__)

# Spans of one request arrive apart (the gateway's and vLLM's exporters): a request
# is sampled once its spans have been stored this long, so its top span is known.
SETTLE = timedelta(seconds=10)
# Re-read this much before the cursor: rows committed late are not missed.
OVERLAP = timedelta(seconds=30)
FIRST_LOOKBACK = timedelta(hours=1)
MAX_ROWS_PER_ROUND = 5000
# Jobs of evaluators that call a model (not cheap), claimed at once: one round of calls.
COSTLY_BATCH = CONCURRENCY

NEW_REQUESTS = text(
    """
    SELECT s.trace_id, s.span_id, s.status_code = 'ERROR' AS failed, s.received_at
    FROM spans AS s
    WHERE s.is_llm AND s.received_at > :since AND s.received_at <= :until
      AND NOT EXISTS (
          SELECT 1 FROM spans AS p
          WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id AND p.is_llm
      )
    ORDER BY s.received_at
    LIMIT :limit
    """
)
NEGATIVE_FEEDBACK = text(
    """
    SELECT q.trace_id, q.span_id, f.received_at
    FROM feedback AS f JOIN llm_requests AS q ON q.trace_id = f.trace_id
    WHERE f.received_at > :since AND f.received_at <= :until AND f.normalized < 0.5
    ORDER BY f.received_at
    LIMIT :limit
    """
)
RECORDS = text(
    """
    SELECT q.trace_id, q.span_id, q.model, q.prompt, q.completion,
           s.attributes ->> 'gen_ai.input.messages' AS messages,
           s.attributes ->> 'inferwatch.logprobs.mean' AS logprob_mean,
           s.attributes ->> 'inferwatch.logprobs.min' AS logprob_min,
           s.attributes ->> 'inferwatch.logprobs.low_confidence_share' AS low_confidence_share,
           s.attributes ->> 'inferwatch.logprobs.tokens' AS logprob_tokens
    FROM llm_requests AS q
    JOIN spans AS s ON s.trace_id = q.trace_id AND s.span_id = q.span_id
    WHERE q.trace_id = ANY(:traces)
    """
)


def utc_now() -> datetime:
    return datetime.now(UTC)


# A last user message this long carries its own document (RAG in the question).
DOCUMENT_WORDS = 60


def chat_messages(messages_json: str | None) -> list[dict[str, str]]:
    """The captured ``gen_ai.input.messages`` as OpenAI chat messages (role, text content);
    empty when nothing was captured or it cannot be read."""
    if not messages_json:
        return []
    try:
        messages = orjson.loads(messages_json)
    except orjson.JSONDecodeError:
        return []
    out = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        parts = [
            p["content"]
            for p in message.get("parts") or []
            if isinstance(p, dict) and isinstance(p.get("content"), str)
        ]
        if parts:
            out.append({"role": str(message.get("role", "user")), "content": "\n".join(parts)})
    return out


def context_of(messages: Sequence[Mapping[str, str]]) -> str | None:
    """The text a request supplied besides its last question: system, tool and earlier
    turns, and the last question itself when it is document-length."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    texts = [
        m["content"]
        for i, m in enumerate(messages)
        if m["role"] != "assistant"
        and (i != last_user or len(m["content"].split()) >= DOCUMENT_WORDS)
    ]
    return "\n".join(texts) or None


def record_of(row: Mapping[str, Any]) -> Record:
    logprobs = {key: float(row[key]) for key in confidence.KEYS if row[key] is not None}
    messages = chat_messages(row["messages"])
    return Record(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        model=row["model"],
        prompt=row["prompt"],
        completion=row["completion"],
        context=context_of(messages),
        messages=messages,
        logprobs=logprobs,
    )


async def within_budgets(
    s: Any,
    policy: Policy,
    metrics: EvaluatorMetrics,
    jobs: list[tuple[str, str, str, str]],
    now: datetime,
) -> list[tuple[str, str, str, str]]:
    """The jobs that fit each evaluator's per-minute budget (jobs queued in the last minute
    count against it); the rest are counted as over budget and dropped."""
    budgets = policy.budgets_per_minute or {}
    if not budgets:
        return jobs
    used = dict(
        (
            await s.execute(
                text(
                    "SELECT evaluator, count(*) FROM evaluation_jobs"
                    " WHERE evaluator = ANY(:e) AND created_at > :since GROUP BY evaluator"
                ),
                {"e": list(budgets), "since": now - timedelta(minutes=1)},
            )
        ).all()
    )
    kept = []
    for job in jobs:
        if policy.within_budget(job[2], used.get(job[2], 0)):
            used[job[2]] = used.get(job[2], 0) + 1
            kept.append(job)
        else:
            metrics.over_budget.labels(job[2]).inc()
    return kept


def policy_for(evaluators: Sequence[Evaluator], settings: EvaluatorSettings) -> Policy:
    """Which evaluators score what: the settings' rates, the evaluators' budgets unless the
    settings set their own."""
    budgets = {e.name: e.budget_per_minute for e in evaluators if e.budget_per_minute}
    return Policy(
        tuple(e.name for e in evaluators),
        settings.base_rate,
        settings.rates,
        {**budgets, **settings.budgets_per_minute},
    )


class Sampler(LeaderPoller):
    name = "evaluation-sampler"

    def __init__(
        self,
        db: Database,
        policy: Policy,
        metrics: EvaluatorMetrics,
        leadership: Leadership,
        *,
        interval_s: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(leadership, interval_s=interval_s)
        self.db, self.policy, self.metrics, self.clock = db, policy, metrics, clock

    async def round(self) -> None:
        await self.sample(self.clock())

    async def sample(self, now: datetime) -> int:
        """Queues jobs for requests and negative feedback that arrived; returns how many."""
        until = now - SETTLE
        queued = 0
        async with self.db.async_session() as s:
            cursors: dict[str, datetime] = dict(
                (await s.execute(text("SELECT stream, position FROM evaluation_cursors"))).all()
            )
            jobs: list[tuple[str, str, str, str]] = []
            since = cursors.get("requests", now - FIRST_LOOKBACK) - OVERLAP
            rows = (
                await s.execute(
                    NEW_REQUESTS, {"since": since, "until": until, "limit": MAX_ROWS_PER_ROUND}
                )
            ).all()
            for trace_id, span_id, failed, _ in rows:
                for evaluator, reason in self.policy.decide(trace_id, failed=failed):
                    jobs.append((trace_id, span_id, evaluator, reason))
            positions = {"requests": rows[-1][3] if len(rows) == MAX_ROWS_PER_ROUND else until}
            since = cursors.get("feedback", now - FIRST_LOOKBACK) - OVERLAP
            feedback = (
                await s.execute(
                    NEGATIVE_FEEDBACK, {"since": since, "until": now, "limit": MAX_ROWS_PER_ROUND}
                )
            ).all()
            for trace_id, span_id, _ in feedback:
                jobs += [
                    (trace_id, span_id, e, "negative_feedback") for e in self.policy.evaluators
                ]
            positions["feedback"] = feedback[-1][2] if len(feedback) == MAX_ROWS_PER_ROUND else now
            jobs = await within_budgets(s, self.policy, self.metrics, jobs, now)
            queued = await queue.enqueue(s, jobs, now)
            for stream, position in positions.items():
                await s.execute(
                    text(
                        "INSERT INTO evaluation_cursors (stream, position) VALUES (:s, :p)"
                        " ON CONFLICT (stream) DO UPDATE SET position = excluded.position"
                    ),
                    {"s": stream, "p": max(position, cursors.get(stream, position))},
                )
        self.metrics.jobs_queued.inc(queued)
        return queued


class Worker(Daemon):
    name = "evaluation-worker"

    def __init__(
        self,
        db: Database,
        evaluators: Sequence[Evaluator],
        metrics: EvaluatorMetrics,
        settings: EvaluatorSettings,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.db, self.metrics, self.settings, self.clock = db, metrics, settings, clock
        self.evaluators = {e.name: e for e in evaluators}
        self.policy = policy_for(evaluators, settings)
        self.cheap = [e.name for e in evaluators if e.cheap]
        # Where a cheap evaluator's flag sends a request next (within its budget).
        self.escalate_to = tuple(e.name for e in evaluators if not e.cheap)

    async def run(self) -> None:
        while not self._stopping.is_set():
            done = 0
            try:
                done = await self.work_once()
            except Exception:
                log.exception("evaluation round failed; trying again")
            await self.pause(0 if done >= self.settings.batch_size else self.settings.poll_s)

    async def work_once(self) -> int:
        """Claims one batch, scores it and writes the results; returns the jobs claimed."""
        now = self.clock()
        cfg = self.settings
        lease = timedelta(seconds=cfg.lease_s)
        async with self.db.async_session() as s:
            jobs = []
            if self.cheap:
                jobs += await queue.claim(
                    s, cfg.batch_size, now, lease, cfg.max_attempts, self.cheap
                )
            if self.escalate_to:
                # A model call each: one round of concurrent calls, so that a batch ends
                # soon after the worker is asked to stop.
                limit = min(cfg.batch_size, COSTLY_BATCH)
                jobs += await queue.claim(
                    s, limit, now, lease, cfg.max_attempts, list(self.escalate_to)
                )
            if not jobs:
                return 0
            rows = (
                (await s.execute(RECORDS, {"traces": sorted({j.trace_id for j in jobs})}))
                .mappings()
                .all()
            )
        records = {(r["trace_id"], r["span_id"]): record_of(dict(r)) for r in rows}
        for name in sorted({j.evaluator for j in jobs}):
            await self._score(
                self.evaluators[name], [j for j in jobs if j.evaluator == name], records
            )
        return len(jobs)

    async def _score(
        self, evaluator: Evaluator, jobs: list[queue.Job], records: Mapping[tuple[str, str], Record]
    ) -> None:
        ready = [
            (j, records[(j.trace_id, j.span_id)])
            for j in jobs
            if (j.trace_id, j.span_id) in records
        ]
        ready = [(j, r) for j, r in ready if all(r.has(need) for need in evaluator.needs)]
        scorable = {j.id for j, _ in ready}
        skipped = [j.id for j in jobs if j.id not in scorable]
        results: list[tuple[queue.Job, Result | str, float]] = []
        if ready:
            started = time.perf_counter()
            try:
                scored: list[Result | str] = list(
                    await asyncio.to_thread(evaluator.score, [r for _, r in ready])
                )
                each_ms = (time.perf_counter() - started) * 1000 / len(ready)
                results = [(j, res, each_ms) for (j, _), res in zip(ready, scored, strict=True)]
            except Exception:  # find the record that fails: one at a time
                for j, r in ready:
                    one_started = time.perf_counter()
                    try:
                        outcome: Result | str = (await asyncio.to_thread(evaluator.score, [r]))[0]
                    except Exception as exc:
                        outcome = f"{type(exc).__name__}: {exc}"
                    results.append((j, outcome, (time.perf_counter() - one_started) * 1000))
        now = self.clock()
        async with self.db.async_session() as s:
            await queue.finish(s, skipped, "skipped", now)
            rows = [
                {
                    "trace_id": j.trace_id,
                    "span_id": j.span_id,
                    "evaluator": evaluator.name,
                    "version": evaluator.version,
                    "score": min(1.0, max(0.0, res.score)),
                    "label": res.label,
                    "flagged": res.flagged,
                    "explanation": res.explanation,
                    "evidence": orjson.dumps(res.evidence).decode(),
                    "latency_ms": ms,
                    "now": now,
                }
                for j, res, ms in results
                if isinstance(res, Result)
            ]
            if rows:
                await s.execute(
                    text(
                        """
                        INSERT INTO evaluations (trace_id, span_id, evaluator, evaluator_version,
                            score, label, flagged, explanation, evidence, latency_ms, created_at)
                        VALUES (:trace_id, :span_id, :evaluator, :version, :score, :label,
                            :flagged, :explanation, CAST(:evidence AS jsonb), :latency_ms, :now)
                        ON CONFLICT ON CONSTRAINT uq_evaluations_request DO NOTHING
                        """
                    ),
                    rows,
                )
            await queue.finish(
                s, [j.id for j, res, _ in results if isinstance(res, Result)], "done", now
            )
            if evaluator.cheap and self.escalate_to:
                reason = f"flagged:{evaluator.name}"
                escalated = [
                    (j.trace_id, j.span_id, name, reason)
                    for j, res, _ in results
                    if isinstance(res, Result) and res.flagged
                    for name in self.escalate_to
                ]
                escalated = await within_budgets(s, self.policy, self.metrics, escalated, now)
                self.metrics.jobs_queued.inc(await queue.enqueue(s, escalated, now))
            for j, res, _ in results:
                if isinstance(res, str):
                    state = await queue.fail(s, j, res, now, self.settings.max_attempts)
                    log.warning(
                        "%s on %s/%s failed (%s): %s",
                        evaluator.name,
                        j.trace_id,
                        j.span_id,
                        state,
                        res,
                    )
                    self.metrics.jobs.labels(
                        evaluator.name, "failed" if state == "queued" else "parked"
                    ).inc()
        self.metrics.jobs.labels(evaluator.name, "done").inc(len(rows))
        self.metrics.jobs.labels(evaluator.name, "skipped").inc(len(skipped))
        flagged = sum(1 for _, res, _ in results if isinstance(res, Result) and res.flagged)
        self.metrics.flagged.labels(evaluator.name).inc(flagged)
