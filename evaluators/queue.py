"""The evaluation job queue in Postgres: enqueue once, claim without double work, retry, park.

A job is unique per (request, evaluator), so enqueueing twice changes
nothing. Workers claim with ``FOR UPDATE SKIP LOCKED`` and hold a lease: a
job whose worker died is claimed again once its lease ends. Each claim counts
an attempt; a job that failed (or whose worker died) ``max_attempts`` times
is parked with its last error instead of being tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

RETRY_BACKOFF = timedelta(seconds=30)


@dataclass(frozen=True)
class Job:
    id: int
    trace_id: str
    span_id: str
    evaluator: str
    attempts: int


async def enqueue(s: AsyncSession, jobs: Sequence[tuple[str, str, str, str]], now: datetime) -> int:
    """Queues (trace_id, span_id, evaluator, reason) jobs; returns how many were new."""
    if not jobs:
        return 0
    result = await s.execute(
        text(
            """
            INSERT INTO evaluation_jobs (trace_id, span_id, evaluator, reason, created_at,
                                         not_before)
            SELECT t, sp, e, r, :now, :now
            FROM unnest(CAST(:t AS text[]), CAST(:s AS text[]), CAST(:e AS text[]),
                        CAST(:r AS text[])) AS j(t, sp, e, r)
            ON CONFLICT ON CONSTRAINT uq_evaluation_jobs_request DO NOTHING
            """
        ),
        {
            "t": [j[0] for j in jobs],
            "s": [j[1] for j in jobs],
            "e": [j[2] for j in jobs],
            "r": [j[3] for j in jobs],
            "now": now,
        },
    )
    return max(int(result.rowcount), 0)  # type: ignore[attr-defined]


async def claim(
    s: AsyncSession,
    limit: int,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
    evaluators: Sequence[str],
) -> list[Job]:
    """Up to ``limit`` due jobs of ``evaluators``, leased to the caller."""
    # Jobs that already used every attempt (their workers kept dying) are parked, not retried.
    await s.execute(
        text(
            """
            UPDATE evaluation_jobs
            SET state = 'parked', finished_at = :now,
                last_error = COALESCE(last_error, 'the worker stopped while scoring it')
            WHERE state = 'running' AND lease_until < :now AND attempts >= :max
            """
        ),
        {"now": now, "max": max_attempts},
    )
    rows = await s.execute(
        text(
            """
            UPDATE evaluation_jobs AS j
            SET state = 'running', attempts = j.attempts + 1, lease_until = :until
            WHERE j.id IN (
                SELECT c.id FROM evaluation_jobs AS c
                WHERE c.evaluator = ANY(:evaluators)
                  AND ((c.state = 'queued' AND c.not_before <= :now)
                       OR (c.state = 'running' AND c.lease_until < :now))
                ORDER BY c.id
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING j.id, j.trace_id, j.span_id, j.evaluator, j.attempts
            """
        ),
        {
            "now": now,
            "until": now + lease,
            "limit": limit,
            "evaluators": list(evaluators),
        },
    )
    return sorted((Job(*row) for row in rows), key=lambda j: j.id)


async def finish(s: AsyncSession, ids: Sequence[int], state: str, now: datetime) -> None:
    """Marks jobs ``done`` or ``skipped`` (the request lacks what the evaluator needs)."""
    if ids:
        await s.execute(
            text(
                "UPDATE evaluation_jobs SET state = :state, finished_at = :now, lease_until = NULL"
                " WHERE id = ANY(:ids)"
            ),
            {"state": state, "now": now, "ids": list(ids)},
        )


async def fail(s: AsyncSession, job: Job, error: str, now: datetime, max_attempts: int) -> str:
    """Queues the job again after a pause, or parks it on its last attempt; the new state."""
    state = "parked" if job.attempts >= max_attempts else "queued"
    await s.execute(
        text(
            """
            UPDATE evaluation_jobs
            SET state = :state, last_error = :error, lease_until = NULL, not_before = :retry,
                finished_at = CASE WHEN :state = 'parked' THEN CAST(:now AS timestamptz) END
            WHERE id = :id
            """
        ),
        {
            "state": state,
            "error": error[:2000],
            "now": now,
            "retry": now + RETRY_BACKOFF,
            "id": job.id,
        },
    )
    return state
