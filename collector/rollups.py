"""Minute and hour rollups, kept up to date incrementally from what was stored since the last pass.

Each source (requests, evaluations, GPU samples, engine samples) has a cursor:
the database time of its last pass. A pass finds the minutes touched by rows
stored since then (less ``OVERLAP``, for transactions that committed after
they started), recomputes exactly those minutes' rows from the source, then
the hours holding them from the minute rows. A minute is thus always the
aggregate of everything stored for it, however late it arrived, and a pass
costs what arrived since the last one, not the history. Passes are idempotent;
the collector's leader runs one every ``interval_s``, under a row lock on the
cursor, so two never interleave.

Percentiles come from the latency histograms (``rollup_latency``, bins of
``latency_bin()``, within 5 % of the exact value): ``ui/data.py`` reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from collector.metrics import CollectorMetrics
from inferwatch.leader import LeaderPoller, Leadership
from inferwatch.store.database import Database

# Rows committed this long after their transaction started are still picked up.
OVERLAP = timedelta(seconds=30)
# A pass that rebuilt this many minutes refreshes the tables' planner statistics.
ANALYZE_AFTER_MINUTES = 500
# Engine counters are differenced against the previous sample up to this far back.
ENGINE_LOOKBACK = "5 minutes"
ENGINE_COUNTERS = (
    "preemptions",
    "prompt_tokens",
    "generation_tokens",
    "prefix_cache_queries",
    "prefix_cache_hits",
    "spec_decode_draft_tokens",
    "spec_decode_accepted_tokens",
    "requests_finished",
)


@dataclass(frozen=True)
class Table:
    """A rollup table: its key columns (besides resolution and bucket) and how
    minute rows combine into hour rows (``maxima`` by max, everything else summed)."""

    name: str
    keys: tuple[str, ...]
    sums: tuple[str, ...]
    maxima: tuple[str, ...] = ()

    def hour_rows(self) -> str:
        columns = [*self.keys, *self.sums, *self.maxima]
        aggregates = [*self.keys, *(f"sum({c})" for c in self.sums)]
        aggregates += [f"max({c})" for c in self.maxima]
        keys = ", ".join(self.keys)
        return (
            f"INSERT INTO {self.name} (resolution, bucket, {', '.join(columns)}) "
            f"SELECT 'hour', date_trunc('hour', bucket), {', '.join(aggregates)} "
            f"FROM {self.name} WHERE resolution = 'minute' "
            "AND bucket >= %(lo)s AND bucket < %(hi)s "
            "AND date_trunc('hour', bucket) = ANY(%(hours)s) "
            f"GROUP BY date_trunc('hour', bucket), {keys}"
        )


def _sum_counts(*metrics: str) -> tuple[str, ...]:
    return tuple(c for m in metrics for c in (f"{m}_ms_sum", f"{m}_count"))


REQUESTS = Table(
    "rollup_requests",
    ("model",),
    (
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        *_sum_counts("ttft", "tpot", "e2e", "queue", "prefill", "decode"),
        "token_cost_usd",
        "unpriced_tokens",
    ),
)
LATENCY = Table("rollup_latency", ("model", "metric", "bin"), ("requests",))
EVALUATIONS = Table(
    "rollup_evaluations", ("model", "evaluator"), ("scored", "flagged", "score_sum")
)
GPU = Table(
    "rollup_gpu",
    ("host", "gpu_index"),
    ("samples", "utilization_sum", "memory_utilization_sum", "power_sum_w"),
    (
        "name",
        "utilization_max",
        "memory_used_max_bytes",
        "memory_total_bytes",
        "power_limit_w",
        "temperature_max_c",
    ),
)
ENGINE = Table(
    "rollup_engine",
    ("engine_id", "model"),
    (
        "samples",
        "interval_s",
        "requests_running_sum",
        "requests_waiting_sum",
        "kv_cache_usage_sum",
        *ENGINE_COUNTERS,
    ),
    ("requests_waiting_max", "kv_cache_usage_max"),
)

IN_MINUTES = "%(lo)s AND {t} < %(hi)s AND date_trunc('minute', {t}) = ANY(%(minutes)s)"

# Requests (one pass over llm_requests feeds both tables). A request's minute is its
# top span's start; a late child span (vLLM's) dirties its parent's minute.
REQUESTS_DIRTY = """
SELECT DISTINCT date_trunc('minute', COALESCE(p.start_time, s.start_time))
FROM spans AS s
LEFT JOIN spans AS p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id AND p.is_llm
WHERE s.is_llm AND s.received_at > %(since)s
"""
REQUESTS_MINUTES = f"""
WITH q AS MATERIALIZED (
    SELECT date_trunc('minute', started_at) AS bucket, COALESCE(model, '') AS model,
           status, input_tokens, output_tokens,
           ttft_ms, tpot_ms, e2e_ms, queue_ms, prefill_ms, decode_ms
    FROM llm_requests
    WHERE started_at >= {IN_MINUTES.format(t="started_at")}
), per_minute AS (
    SELECT bucket, model, count(*) AS requests, count(*) FILTER (WHERE status = 'error') AS errors,
           COALESCE(sum(input_tokens), 0) AS input_tokens,
           COALESCE(sum(output_tokens), 0) AS output_tokens,
           sum(ttft_ms), count(ttft_ms), sum(tpot_ms), count(tpot_ms),
           sum(e2e_ms), count(e2e_ms), sum(queue_ms), count(queue_ms),
           sum(prefill_ms), count(prefill_ms), sum(decode_ms), count(decode_ms)
    FROM q GROUP BY bucket, model
), latency AS (
    INSERT INTO rollup_latency (resolution, bucket, model, metric, bin, requests)
    SELECT 'minute', q.bucket, q.model, m.metric, latency_bin(m.ms), count(*)
    FROM q
    CROSS JOIN LATERAL (VALUES ('ttft', q.ttft_ms), ('tpot', q.tpot_ms), ('e2e', q.e2e_ms),
                               ('queue', q.queue_ms)) AS m (metric, ms)
    WHERE m.ms IS NOT NULL
    GROUP BY q.bucket, q.model, m.metric, latency_bin(m.ms)
)
INSERT INTO rollup_requests
SELECT 'minute', r.*,
       COALESCE(r.input_tokens / 1000.0 * p.input_usd_per_1k
                + r.output_tokens / 1000.0 * p.output_usd_per_1k, 0),
       CASE WHEN p.input_usd_per_1k IS NULL THEN r.input_tokens + r.output_tokens ELSE 0 END
FROM per_minute AS r
LEFT JOIN LATERAL model_price(NULLIF(r.model, '')) AS p ON true
"""

# Evaluations count in their request's minute: the latest version's latest score.
EVALUATIONS_DIRTY = """
SELECT DISTINCT date_trunc('minute', s.start_time)
FROM evaluations AS e
JOIN spans AS s ON s.trace_id = e.trace_id AND s.span_id = e.span_id
WHERE e.created_at > %(since)s
"""
EVALUATIONS_MINUTES = f"""
INSERT INTO rollup_evaluations (resolution, bucket, model, evaluator, scored, flagged, score_sum)
SELECT 'minute', date_trunc('minute', q.started_at), COALESCE(q.model, ''), e.evaluator,
       count(*), count(*) FILTER (WHERE e.flagged), sum(e.score)
FROM llm_requests AS q
JOIN LATERAL (
    SELECT DISTINCT ON (ev.evaluator) ev.evaluator, ev.flagged, ev.score
    FROM evaluations AS ev
    WHERE ev.trace_id = q.trace_id AND ev.span_id = q.span_id
    ORDER BY ev.evaluator, ev.created_at DESC, ev.id DESC
) AS e ON true
WHERE q.started_at >= {IN_MINUTES.format(t="q.started_at")}
GROUP BY 2, 3, 4
"""

GPU_DIRTY = "SELECT DISTINCT date_trunc('minute', time) FROM gpu_samples WHERE time > %(since)s"
GPU_MINUTES = f"""
INSERT INTO rollup_gpu
SELECT 'minute', date_trunc('minute', time), host, gpu_index, max(name), count(*),
       sum(utilization_gpu), max(utilization_gpu), sum(utilization_memory),
       max(memory_used_bytes), max(memory_total_bytes), sum(power_w), max(power_limit_w),
       max(temperature_c)
FROM gpu_samples
WHERE error IS NULL AND time >= {IN_MINUTES.format(t="time")}
GROUP BY 2, 3, 4
"""

ENGINE_DIRTY = (
    "SELECT DISTINCT date_trunc('minute', time) FROM engine_samples WHERE time > %(since)s"
)
# A counter that went down was reset: its delta is then its new value (Prometheus' rate()).
_DELTAS = ",\n".join(
    f"CASE WHEN {c} < LAG({c}) OVER w THEN {c} ELSE {c} - LAG({c}) OVER w END AS d_{c}"
    for c in ENGINE_COUNTERS
)
ENGINE_MINUTES = f"""
WITH s AS (
    SELECT time, engine_id, model, requests_running, requests_waiting, kv_cache_usage,
           EXTRACT(EPOCH FROM time - LAG(time) OVER w) AS interval_s,
           {_DELTAS}
    FROM engine_samples
    WHERE time >= %(lo)s - interval '{ENGINE_LOOKBACK}' AND time < %(hi)s
    WINDOW w AS (PARTITION BY engine_id, model ORDER BY time)
)
INSERT INTO rollup_engine (resolution, bucket, engine_id, model, samples, interval_s,
    requests_running_sum, requests_waiting_sum, requests_waiting_max, kv_cache_usage_sum,
    kv_cache_usage_max, {", ".join(ENGINE_COUNTERS)})
SELECT 'minute', date_trunc('minute', time), engine_id, model, count(*),
       COALESCE(sum(interval_s), 0), sum(requests_running), sum(requests_waiting),
       max(requests_waiting), sum(kv_cache_usage), max(kv_cache_usage),
       {", ".join(f"sum(d_{c})" for c in ENGINE_COUNTERS)}
FROM s
WHERE time >= {IN_MINUTES.format(t="time")}
GROUP BY 2, 3, 4
"""


@dataclass(frozen=True)
class Source:
    """What one cursor follows: how to find dirty minutes, and how to rebuild them."""

    name: str
    dirty: str
    minutes: str
    tables: tuple[Table, ...]


SOURCES = (
    Source("requests", REQUESTS_DIRTY, REQUESTS_MINUTES, (REQUESTS, LATENCY)),
    Source("evaluations", EVALUATIONS_DIRTY, EVALUATIONS_MINUTES, (EVALUATIONS,)),
    Source("gpu", GPU_DIRTY, GPU_MINUTES, (GPU,)),
    Source("engine", ENGINE_DIRTY, ENGINE_MINUTES, (ENGINE,)),
)


async def refresh_source(conn: psycopg.AsyncConnection[Any], source: Source) -> int:
    """One pass over ``source`` in one transaction; the number of minutes rebuilt."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO rollup_cursors (name, watermark, refreshed_at) "
            "VALUES (%s, 'epoch', now()) ON CONFLICT (name) DO NOTHING",
            (source.name,),
        )
        cursor = await conn.execute(
            "SELECT watermark, now() FROM rollup_cursors WHERE name = %s FOR UPDATE",
            (source.name,),
        )
        row = await cursor.fetchone()
        assert row is not None
        watermark, now = row
        found = await conn.execute(source.dirty, {"since": watermark - OVERLAP})
        minutes = sorted(r[0] for r in await found.fetchall())
        if minutes:
            await _rebuild(conn, source, minutes)
        await conn.execute(
            "UPDATE rollup_cursors SET watermark = %s, refreshed_at = now() WHERE name = %s",
            (now, source.name),
        )
        if len(minutes) >= ANALYZE_AFTER_MINUTES:
            # A large rebuild (the first pass over an existing history) changes the tables
            # faster than autovacuum re-reads their statistics; stale ones make the
            # dashboard's plans pick nested loops over what they think are empty tables.
            for table in source.tables:
                await conn.execute(f"ANALYZE {table.name}")
    return len(minutes)


async def _rebuild(
    conn: psycopg.AsyncConnection[Any], source: Source, minutes: list[datetime]
) -> None:
    hours = sorted({m.replace(minute=0) for m in minutes})
    span = {"lo": minutes[0], "hi": minutes[-1] + timedelta(minutes=1), "minutes": minutes}
    hour_span = {"lo": hours[0], "hi": hours[-1] + timedelta(hours=1), "hours": hours}
    for table in source.tables:
        await conn.execute(
            f"DELETE FROM {table.name} WHERE resolution = 'minute' AND bucket = ANY(%(minutes)s)",
            span,
        )
    await conn.execute(source.minutes, span)
    for table in source.tables:
        await conn.execute(
            f"DELETE FROM {table.name} WHERE resolution = 'hour' AND bucket = ANY(%(hours)s)",
            hour_span,
        )
        await conn.execute(table.hour_rows(), hour_span)


async def refresh(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """One pass over every source; minutes rebuilt per source."""
    return {source.name: await refresh_source(conn, source) for source in SOURCES}


async def refresh_database(db: Database) -> dict[str, int]:
    """One pass on a connection of its own."""
    conn = await db.connect_raw()
    try:
        return await refresh(conn)
    finally:
        await conn.close()


class RollupRefresher(LeaderPoller):
    """Refreshes the rollups every ``interval_s`` while this collector leads."""

    name = "rollups"

    def __init__(
        self,
        db: Database,
        metrics: CollectorMetrics,
        leadership: Leadership,
        *,
        interval_s: float,
    ) -> None:
        super().__init__(leadership, interval_s=interval_s)
        self.db = db
        self.metrics = metrics

    async def round(self) -> None:
        started = time.monotonic()
        rebuilt = await refresh_database(self.db)
        for source, minutes in rebuilt.items():
            self.metrics.rollup_minutes.labels(source=source).inc(minutes)
        self.metrics.rollup_seconds.observe(time.monotonic() - started)
