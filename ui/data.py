"""Every query the dashboard runs: parameterised SQL over the documented views and the rollups.

Time series and percentiles read the minute/hour rollups (``collector/rollups.py``),
so a panel costs the same over 1,000 requests or 10 million; lists (traces,
worst answers, feedback, alerts) read the views with a time range and a limit.
Each function takes a connection and a ``Window`` and returns a DataFrame whose
columns carry their units in their names (``_ms``, ``_usd``, ``_per_s``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, text

from ui.window import Window

PERCENTILES = (0.5, 0.95, 0.99)
TRACE_LIMIT = 200

MODELS = "(cardinality(CAST(:models AS text[])) = 0 OR {col} = ANY(CAST(:models AS text[])))"
IN_ROLLUP = "resolution = :res AND bucket >= :rollup_lo AND bucket < :hi AND " + MODELS.format(
    col="model"
)
T = "date_bin(:step, bucket, :origin)"


def frame(conn: Connection, query: str, **params: Any) -> pd.DataFrame:
    """The query's rows; NUMERIC columns (sums of integers) as floats."""
    result = conn.execute(text(query), params)
    df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in df.columns:
        values = df[column].dropna()
        if not values.empty and isinstance(values.iloc[0], Decimal):
            df[column] = df[column].astype(float)
    return df


def models(conn: Connection) -> list[str]:
    """Models seen in the last 30 days (from the hour rollup: cheap)."""
    rows = conn.execute(
        text(
            "SELECT DISTINCT model FROM rollup_requests WHERE resolution = 'hour' "
            "AND bucket > now() - interval '30 days' AND model <> '' ORDER BY 1"
        )
    )
    return [r[0] for r in rows]


def request_series(conn: Connection, w: Window) -> pd.DataFrame:
    """Per step: requests/s, tokens/s, error rate, mean latencies and phases, token cost."""
    return frame(
        conn,
        f"""
        SELECT {T} AS time,
               sum(requests) AS requests,
               sum(errors) AS errors,
               sum(requests) / EXTRACT(EPOCH FROM CAST(:step AS interval)) AS requests_per_s,
               sum(output_tokens) / EXTRACT(EPOCH FROM CAST(:step AS interval))
                   AS output_tokens_per_s,
               sum(input_tokens) AS input_tokens,
               sum(output_tokens) AS output_tokens,
               sum(errors)::float / NULLIF(sum(requests), 0) AS error_rate,
               sum(ttft_ms_sum) / NULLIF(sum(ttft_count), 0) AS ttft_mean_ms,
               sum(tpot_ms_sum) / NULLIF(sum(tpot_count), 0) AS tpot_mean_ms,
               sum(e2e_ms_sum) / NULLIF(sum(e2e_count), 0) AS e2e_mean_ms,
               sum(queue_ms_sum) / NULLIF(sum(queue_count), 0) AS queue_mean_ms,
               sum(prefill_ms_sum) / NULLIF(sum(prefill_count), 0) AS prefill_mean_ms,
               sum(decode_ms_sum) / NULLIF(sum(decode_count), 0) AS decode_mean_ms,
               sum(token_cost_usd) AS token_cost_usd
        FROM rollup_requests
        WHERE {IN_ROLLUP}
        GROUP BY 1 ORDER BY 1
        """,
        **w.params(),
    )


def totals(conn: Connection, w: Window) -> dict[str, float | None]:
    """The window as one row: requests, errors, tokens, rates, token cost."""
    df = frame(
        conn,
        f"""
        SELECT sum(requests) AS requests, sum(errors) AS errors,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(token_cost_usd) AS token_cost_usd
        FROM rollup_requests WHERE {IN_ROLLUP}
        """,
        **w.params(),
    )
    row = {str(k): (None if pd.isna(v) else float(v)) for k, v in df.iloc[0].items()}
    seconds = w.length.total_seconds()
    requests = row["requests"] or 0.0
    row["requests_per_s"] = requests / seconds
    row["output_tokens_per_s"] = (row["output_tokens"] or 0.0) / seconds
    row["error_rate"] = (row["errors"] or 0.0) / requests if requests else None
    return row


def percentiles(conn: Connection, w: Window, by_step: bool = False) -> pd.DataFrame:
    """p50/p95/p99 of each latency metric over the window (or per step): metric, q, value_ms."""
    time_col = f"{T} AS time," if by_step else ""
    part = "metric, time" if by_step else "metric"
    return frame(
        conn,
        f"""
        WITH h AS (
            SELECT {time_col} metric, bin, sum(requests) AS n
            FROM rollup_latency WHERE {IN_ROLLUP}
            GROUP BY {part}, bin
        ), c AS (
            SELECT *, sum(n) OVER (PARTITION BY {part} ORDER BY bin) AS cum,
                      sum(n) OVER (PARTITION BY {part}) AS total
            FROM h
        )
        SELECT {part}, q.q, latency_bin_ms(min(c.bin)) AS value_ms
        FROM c CROSS JOIN unnest(CAST(:qs AS float8[])) AS q (q)
        WHERE c.cum >= q.q * c.total
        GROUP BY {part}, q.q ORDER BY {part}, q.q
        """,
        qs=list(PERCENTILES),
        **w.params(),
    )


def histogram(conn: Connection, w: Window, metric: str) -> pd.DataFrame:
    """Requests per latency bin: lower and upper bound in ms, requests."""
    return frame(
        conn,
        f"""
        SELECT latency_bin_ms(bin) / sqrt(1.1) AS lower_ms, latency_bin_ms(bin) * sqrt(1.1)
               AS upper_ms, sum(requests) AS requests
        FROM rollup_latency WHERE {IN_ROLLUP} AND metric = :metric
        GROUP BY bin ORDER BY bin
        """,
        metric=metric,
        **w.params(),
    )


def cost_series(conn: Connection, w: Window) -> pd.DataFrame:
    """Per step and model: token-priced cost, its share of GPU-hour cost, tokens, requests.

    A GPU's price per hour is charged for every minute (or hour) it was polled in,
    and shared among that minute's requests whose model has no token price, by
    tokens. GPU time no such request used is shown as model ``(idle GPU)``."""
    return frame(
        conn,
        f"""
        WITH priced AS (  -- each GPU model's $/hour, by the longest matching price name
            SELECT DISTINCT ON (n.name) n.name, p.usd_per_hour
            FROM (SELECT DISTINCT name FROM rollup_gpu
                  WHERE resolution = :res AND bucket >= :rollup_lo AND bucket < :hi) AS n
            JOIN gpu_prices AS p ON n.name ILIKE '%' || p.gpu || '%'
            ORDER BY n.name, length(p.gpu) DESC
        ), gpu AS (
            SELECT g.bucket, sum(p.usd_per_hour) * CASE :res WHEN 'minute' THEN 1 / 60.0
                                                   ELSE 1 END AS gpu_usd
            FROM rollup_gpu AS g JOIN priced AS p ON p.name = g.name
            WHERE g.resolution = :res AND g.bucket >= :rollup_lo AND g.bucket < :hi
            GROUP BY g.bucket
        ), req AS (
            SELECT bucket, model, requests, input_tokens, output_tokens, token_cost_usd,
                   unpriced_tokens,
                   sum(unpriced_tokens) OVER (PARTITION BY bucket) AS bucket_unpriced
            FROM rollup_requests WHERE resolution = :res AND bucket >= :rollup_lo AND bucket < :hi
        ), unpriced AS (
            SELECT DISTINCT bucket FROM req WHERE bucket_unpriced > 0
        ), shared AS (
            SELECT r.bucket, r.model, r.requests, r.input_tokens, r.output_tokens,
                   r.token_cost_usd,
                   COALESCE(g.gpu_usd * r.unpriced_tokens / NULLIF(r.bucket_unpriced, 0), 0)
                       AS gpu_cost_usd
            FROM req AS r LEFT JOIN gpu AS g ON g.bucket = r.bucket
            UNION ALL  -- GPU time that no request without a token price used
            SELECT g.bucket, '(idle GPU)', 0, 0, 0, 0, g.gpu_usd
            FROM gpu AS g LEFT JOIN unpriced AS u ON u.bucket = g.bucket
            WHERE u.bucket IS NULL
        )
        SELECT {T} AS time, model, sum(requests) AS requests,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(token_cost_usd) AS token_cost_usd, sum(gpu_cost_usd) AS gpu_cost_usd,
               sum(token_cost_usd + gpu_cost_usd) AS cost_usd
        FROM shared
        WHERE {MODELS.format(col="model")} OR model = '(idle GPU)'
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        **w.params(),
    )


def evaluation_series(conn: Connection, w: Window) -> pd.DataFrame:
    """Per step and evaluator: requests scored, flagged, flagged rate, mean score."""
    return frame(
        conn,
        f"""
        SELECT {T} AS time, evaluator, sum(scored) AS scored, sum(flagged) AS flagged,
               sum(flagged)::float / NULLIF(sum(scored), 0) AS flagged_rate,
               sum(score_sum) / NULLIF(sum(scored), 0) AS mean_score
        FROM rollup_evaluations WHERE {IN_ROLLUP}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        **w.params(),
    )


def evaluations_by_model(conn: Connection, w: Window) -> pd.DataFrame:
    return frame(
        conn,
        f"""
        SELECT model, evaluator, sum(scored) AS scored, sum(flagged) AS flagged,
               sum(flagged)::float / NULLIF(sum(scored), 0) AS flagged_rate,
               sum(score_sum) / NULLIF(sum(scored), 0) AS mean_score
        FROM rollup_evaluations WHERE {IN_ROLLUP}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        **w.params(),
    )


def worst_scored(conn: Connection, w: Window, limit: int = 20) -> pd.DataFrame:
    """The highest-risk scores given in the window, with the answer they judged."""
    return frame(
        conn,
        f"""
        WITH worst AS (
            SELECT e.created_at AS scored_at, e.evaluator, e.score, e.label, e.explanation,
                   s.model, e.trace_id, e.span_id
            FROM evaluations AS e
            JOIN spans AS s ON s.trace_id = e.trace_id AND s.span_id = e.span_id
            WHERE e.created_at >= :lo AND e.created_at < :hi AND e.flagged
              AND {MODELS.format(col="s.model")}
            ORDER BY e.score DESC, e.created_at DESC LIMIT :limit
        )
        SELECT w.scored_at, w.evaluator, w.score, w.label, w.explanation, w.model, w.trace_id,
               left(q.completion, 300) AS completion
        FROM worst AS w
        LEFT JOIN llm_requests AS q ON q.trace_id = w.trace_id AND q.span_id = w.span_id
        ORDER BY w.score DESC, w.scored_at DESC
        """,
        limit=limit,
        **w.params(),
    )


def feedback_summary(conn: Connection, w: Window) -> dict[str, float | None]:
    """Thumbs up and down received in the window, and the share of ups."""
    row = conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE kind = 'thumbs' AND score > 0), "
            "count(*) FILTER (WHERE kind = 'thumbs' AND score < 0), avg(normalized) "
            "FROM feedback WHERE received_at >= :lo AND received_at < :hi"
        ),
        w.params(),
    ).one()
    up, down = float(row[0]), float(row[1])
    return {
        "thumbs_up": up,
        "thumbs_down": down,
        "up_ratio": up / (up + down) if up + down else None,
        "mean_score": None if row[2] is None else float(row[2]),
    }


def feedback_series(conn: Connection, w: Window) -> pd.DataFrame:
    return frame(
        conn,
        """
        SELECT date_bin(:step, received_at, :origin) AS time,
               count(*) FILTER (WHERE kind = 'thumbs' AND score > 0) AS thumbs_up,
               count(*) FILTER (WHERE kind = 'thumbs' AND score < 0) AS thumbs_down
        FROM feedback WHERE received_at >= :lo AND received_at < :hi
        GROUP BY 1 ORDER BY 1
        """,
        **w.params(),
    )


def feedback_comments(conn: Connection, w: Window, limit: int = 50) -> pd.DataFrame:
    return frame(
        conn,
        """
        SELECT f.received_at, f.kind, f.score, f.comment, f.user_id, f.trace_id, q.model
        FROM feedback AS f
        LEFT JOIN llm_requests AS q ON q.trace_id = f.trace_id
        WHERE f.received_at >= :lo AND f.received_at < :hi AND f.comment IS NOT NULL
        ORDER BY f.received_at DESC LIMIT :limit
        """,
        limit=limit,
        **w.params(),
    )


def feedback_agreement(conn: Connection, w: Window) -> pd.DataFrame:
    """Thumbs against each evaluator's verdict, for requests that have both."""
    return frame(
        conn,
        """
        SELECT e.evaluator,
               CASE WHEN f.score > 0 THEN 'thumbs up' ELSE 'thumbs down' END AS feedback,
               count(*) FILTER (WHERE e.flagged) AS flagged,
               count(*) FILTER (WHERE NOT e.flagged) AS not_flagged
        FROM feedback AS f
        JOIN LATERAL (  -- each evaluator's latest verdict on the request
            SELECT DISTINCT ON (ev.evaluator) ev.evaluator, ev.flagged
            FROM evaluations AS ev WHERE ev.trace_id = f.trace_id
            ORDER BY ev.evaluator, ev.created_at DESC, ev.id DESC
        ) AS e ON true
        WHERE f.received_at >= :lo AND f.received_at < :hi AND f.kind = 'thumbs'
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        **w.params(),
    )


def gpu_series(conn: Connection, w: Window) -> pd.DataFrame:
    """Per step and GPU: utilisation, memory, power, temperature."""
    return frame(
        conn,
        f"""
        SELECT {T} AS time, host || ' #' || gpu_index AS gpu, max(name) AS name,
               sum(utilization_sum) / NULLIF(sum(samples), 0) AS utilization_pct,
               sum(memory_utilization_sum) / NULLIF(sum(samples), 0) AS memory_utilization_pct,
               max(memory_used_max_bytes) / 1073741824.0 AS memory_used_gib,
               max(memory_total_bytes) / 1073741824.0 AS memory_total_gib,
               sum(power_sum_w) / NULLIF(sum(samples), 0) AS power_w,
               max(temperature_max_c) AS temperature_c
        FROM rollup_gpu
        WHERE resolution = :res AND bucket >= :rollup_lo AND bucket < :hi
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        **w.params(),
    )


def engine_series(conn: Connection, w: Window) -> pd.DataFrame:
    """Per step and model: queue, KV cache, prefix cache, preemptions, speculative decoding."""
    return frame(
        conn,
        f"""
        SELECT {T} AS time, model,
               sum(requests_running_sum) / NULLIF(sum(samples), 0) AS requests_running,
               sum(requests_waiting_sum) / NULLIF(sum(samples), 0) AS requests_waiting,
               100 * sum(kv_cache_usage_sum) / NULLIF(sum(samples), 0) AS kv_cache_usage_pct,
               100 * sum(prefix_cache_hits) / NULLIF(sum(prefix_cache_queries), 0)
                   AS prefix_cache_hit_pct,
               sum(preemptions) / NULLIF(sum(interval_s), 0) AS preemptions_per_s,
               100 * sum(spec_decode_accepted_tokens)
                   / NULLIF(sum(spec_decode_draft_tokens), 0) AS spec_decode_acceptance_pct,
               sum(generation_tokens) / NULLIF(sum(interval_s), 0) AS generation_tokens_per_s
        FROM rollup_engine WHERE {IN_ROLLUP}
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        **w.params(),
    )


def last_gpu_sample(conn: Connection) -> Any:
    """When any GPU was last polled (None: never, on this database)."""
    return conn.execute(text("SELECT max(time) FROM gpu_samples")).scalar()


def traces(
    conn: Connection,
    w: Window,
    *,
    status: str | None = None,
    min_e2e_ms: float | None = None,
    search: str | None = None,
    flagged_only: bool = False,
    limit: int = TRACE_LIMIT,
) -> pd.DataFrame:
    """The newest requests matching the filters, with their worst score and feedback."""
    return frame(
        conn,
        f"""
        SELECT q.started_at, q.model, q.status, q.ttft_ms, q.tpot_ms, q.e2e_ms,
               q.input_tokens, q.output_tokens, ev.worst_score, ev.flagged_by,
               fb.thumbs, q.finish_reason, q.error, q.trace_id,
               left(q.completion, 120) AS completion
        FROM llm_requests AS q
        LEFT JOIN LATERAL (
            SELECT max(e.score) AS worst_score,
                   string_agg(DISTINCT e.evaluator, ', ') FILTER (WHERE e.flagged) AS flagged_by
            FROM evaluations AS e WHERE e.trace_id = q.trace_id AND e.span_id = q.span_id
        ) AS ev ON true
        LEFT JOIN LATERAL (
            SELECT sum(sign(f.score)) AS thumbs FROM feedback AS f
            WHERE f.trace_id = q.trace_id AND f.kind = 'thumbs'
        ) AS fb ON true
        WHERE q.started_at >= :lo AND q.started_at < :hi
          AND {MODELS.format(col="q.model")}
          AND (CAST(:status AS text) IS NULL OR q.status = :status)
          AND (CAST(:min_e2e AS float8) IS NULL OR q.e2e_ms >= :min_e2e)
          AND (CAST(:search AS text) IS NULL
               OR q.prompt ILIKE :search OR q.completion ILIKE :search
               OR q.trace_id = lower(CAST(:raw_search AS text)))
          AND (NOT :flagged_only OR ev.flagged_by IS NOT NULL)
        ORDER BY q.started_at DESC LIMIT :limit
        """,
        status=status,
        min_e2e=min_e2e_ms,
        search=None if not search else "%" + _escape_like(search) + "%",
        raw_search=search,
        flagged_only=flagged_only,
        limit=limit,
        **w.params(),
    )


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def trace_request(conn: Connection, trace_id: str) -> pd.DataFrame:
    """The trace's LLM request(s) with cost, GPU context and feedback."""
    return frame(
        conn,
        """
        SELECT q.*, c.cost_usd, c.cost_basis, g.gpu_utilization_mean, g.gpu_utilization_max,
               g.gpu_memory_used_max_bytes, g.engine_requests_running,
               g.engine_requests_waiting, g.engine_kv_cache_usage
        FROM llm_requests AS q
        LEFT JOIN llm_request_gpu AS g ON g.trace_id = q.trace_id AND g.span_id = q.span_id
        LEFT JOIN llm_request_costs AS c ON c.trace_id = q.trace_id AND c.span_id = q.span_id
        WHERE q.trace_id = :trace_id
        """,
        trace_id=trace_id,
    )


def trace_spans(conn: Connection, trace_id: str) -> pd.DataFrame:
    """Every span of the trace, for the waterfall: offsets from the trace's start in ms."""
    return frame(
        conn,
        """
        SELECT span_id, parent_span_id, name, kind, service_name, status_code, status_message,
               start_time, duration_ms,
               (start_time_unix_nano - min(start_time_unix_nano) OVER ()) / 1e6 AS start_ms,
               (end_time_unix_nano - min(start_time_unix_nano) OVER ()) / 1e6 AS end_ms,
               queue_ms, prefill_ms, decode_ms, ttft_ms,
               attributes ->> 'inferwatch.logprobs.mean' AS logprob_mean,
               attributes ->> 'inferwatch.logprobs.min' AS logprob_min,
               attributes ->> 'inferwatch.logprobs.low_confidence_share' AS low_confidence_share,
               attributes ->> 'inferwatch.logprobs.tokens' AS logprob_tokens
        FROM spans WHERE trace_id = :trace_id ORDER BY start_time_unix_nano
        """,
        trace_id=trace_id,
    )


def trace_evaluations(conn: Connection, trace_id: str) -> pd.DataFrame:
    return frame(
        conn,
        """
        SELECT evaluator, evaluator_version, score, label, flagged, explanation, evidence,
               latency_ms, created_at
        FROM llm_request_evaluations WHERE trace_id = :trace_id ORDER BY evaluator
        """,
        trace_id=trace_id,
    )


def trace_feedback(conn: Connection, trace_id: str) -> pd.DataFrame:
    return frame(
        conn,
        "SELECT received_at, kind, score, label, comment, user_id FROM feedback "
        "WHERE trace_id = :trace_id ORDER BY received_at",
        trace_id=trace_id,
    )


def active_alerts(conn: Connection) -> pd.DataFrame:
    return frame(
        conn,
        "SELECT state, severity, rule, summary, value, active_since, fired_at, labels "
        "FROM alerts_active ORDER BY state = 'firing' DESC, severity, active_since",
    )


def alert_history(conn: Connection, w: Window, limit: int = 200) -> pd.DataFrame:
    return frame(
        conn,
        "SELECT at, rule, severity, from_state, to_state, value, labels FROM alert_history "
        "WHERE at >= :lo AND at < :hi ORDER BY at DESC LIMIT :limit",
        limit=limit,
        **w.params(),
    )


def silences(conn: Connection) -> pd.DataFrame:
    return frame(
        conn,
        "SELECT id, matchers, starts_at, ends_at, created_by, comment, "
        "ends_at > now() AS active FROM alert_silences "
        "WHERE ends_at > now() - interval '7 days' ORDER BY ends_at DESC",
    )


def rollups_refreshed(conn: Connection) -> Any:
    """When the request rollup last took in new data (None: never)."""
    return conn.execute(
        text("SELECT refreshed_at FROM rollup_cursors WHERE name = 'requests'")
    ).scalar()
