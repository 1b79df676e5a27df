"""GPU samples, vLLM engine samples, feedback, prices, and the views that join them to requests

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Counters become per-interval deltas and rates. A counter that went down was
# reset (the engine restarted): its delta is then the new value itself, as
# Prometheus' rate() does.
ENGINE_RATES_VIEW = """
CREATE VIEW engine_rates AS
WITH d AS (
    SELECT s.*,
           EXTRACT(EPOCH FROM s.time - LAG(s.time) OVER w) AS interval_s,
           s.preemptions - LAG(s.preemptions) OVER w AS d_preemptions,
           s.prompt_tokens - LAG(s.prompt_tokens) OVER w AS d_prompt_tokens,
           s.generation_tokens - LAG(s.generation_tokens) OVER w AS d_generation_tokens,
           s.prefix_cache_queries - LAG(s.prefix_cache_queries) OVER w AS d_prefix_queries,
           s.prefix_cache_hits - LAG(s.prefix_cache_hits) OVER w AS d_prefix_hits,
           s.spec_decode_draft_tokens - LAG(s.spec_decode_draft_tokens) OVER w AS d_draft_tokens,
           s.spec_decode_accepted_tokens - LAG(s.spec_decode_accepted_tokens) OVER w
               AS d_accepted_tokens,
           s.requests_finished - LAG(s.requests_finished) OVER w AS d_finished
    FROM engine_samples AS s
    WINDOW w AS (PARTITION BY s.engine_id, s.model ORDER BY s.time)
), r AS (
    SELECT d.*,
           CASE WHEN d_preemptions < 0 THEN preemptions ELSE d_preemptions END AS preempted,
           CASE WHEN d_prompt_tokens < 0 THEN prompt_tokens ELSE d_prompt_tokens END
               AS prompt_tokens_delta,
           CASE WHEN d_generation_tokens < 0 THEN generation_tokens ELSE d_generation_tokens END
               AS generation_tokens_delta,
           CASE WHEN d_prefix_queries < 0 THEN prefix_cache_queries ELSE d_prefix_queries END
               AS prefix_queries_delta,
           CASE WHEN d_prefix_hits < 0 THEN prefix_cache_hits ELSE d_prefix_hits END
               AS prefix_hits_delta,
           CASE WHEN d_draft_tokens < 0 THEN spec_decode_draft_tokens ELSE d_draft_tokens END
               AS draft_tokens_delta,
           CASE WHEN d_accepted_tokens < 0 THEN spec_decode_accepted_tokens
                ELSE d_accepted_tokens END AS accepted_tokens_delta,
           CASE WHEN d_finished < 0 THEN requests_finished ELSE d_finished END
               AS finished_delta
    FROM d
)
SELECT r.time,
       r.engine_id,
       e.name                                            AS engine,
       r.model,
       r.interval_s,
       r.requests_running,
       r.requests_waiting,
       r.kv_cache_usage,
       r.prompt_tokens_delta,
       r.generation_tokens_delta,
       r.prompt_tokens_delta / NULLIF(r.interval_s, 0)     AS prompt_tokens_per_s,
       r.generation_tokens_delta / NULLIF(r.interval_s, 0) AS generation_tokens_per_s,
       r.preempted / NULLIF(r.interval_s, 0)               AS preemptions_per_s,
       r.finished_delta / NULLIF(r.interval_s, 0)          AS requests_per_s,
       r.prefix_hits_delta / NULLIF(r.prefix_queries_delta, 0) AS prefix_cache_hit_rate,
       r.accepted_tokens_delta / NULLIF(r.draft_tokens_delta, 0)
                                                         AS spec_decode_acceptance_rate
FROM r
JOIN engines AS e ON e.id = r.engine_id
WHERE r.interval_s IS NOT NULL
"""

# Which feedback a request got: one row per LLM request (feedback may arrive
# before the request's spans; the join links it whenever they are stored).
REQUEST_FEEDBACK_VIEW = """
CREATE VIEW llm_request_feedback AS
SELECT q.trace_id,
       q.span_id,
       q.model,
       q.started_at,
       f.feedback_count,
       f.thumbs_up,
       f.thumbs_down,
       f.mean_score,
       f.last_comment,
       f.last_feedback_at
FROM llm_requests AS q
JOIN (
    SELECT trace_id,
           count(*)                                              AS feedback_count,
           count(*) FILTER (WHERE kind = 'thumbs' AND score > 0) AS thumbs_up,
           count(*) FILTER (WHERE kind = 'thumbs' AND score < 0) AS thumbs_down,
           avg(normalized)                                       AS mean_score,
           (array_agg(comment ORDER BY received_at DESC)
               FILTER (WHERE comment IS NOT NULL))[1]            AS last_comment,
           max(received_at)                                      AS last_feedback_at
    FROM feedback
    GROUP BY trace_id
) AS f ON f.trace_id = q.trace_id
"""

# The GPU and engine around each request. A GPU sample covers the poll interval
# before it (at most 60 s, which bounds the index range scanned). The samples
# overlapping the request's lifetime give mean and max utilisation and memory,
# over all GPUs the collector polls (which GPU served a request is not known from
# its spans). The engine's queue and KV cache are the last sample of the
# request's model at or before its start (within a minute).
REQUEST_GPU_VIEW = """
CREATE VIEW llm_request_gpu AS
SELECT q.trace_id,
       q.span_id,
       q.model,
       q.started_at,
       q.ended_at,
       g.gpu_samples,
       g.gpu_utilization_mean,
       g.gpu_utilization_max,
       g.gpu_memory_utilization_mean,
       g.gpu_memory_used_max_bytes,
       g.gpu_power_mean_w,
       en.requests_running  AS engine_requests_running,
       en.requests_waiting  AS engine_requests_waiting,
       en.kv_cache_usage    AS engine_kv_cache_usage
FROM llm_requests AS q
LEFT JOIN LATERAL (
    SELECT count(*)                                 AS gpu_samples,
           avg(s.utilization_gpu)                   AS gpu_utilization_mean,
           max(s.utilization_gpu)                   AS gpu_utilization_max,
           avg(s.utilization_memory)                AS gpu_memory_utilization_mean,
           max(s.memory_used_bytes)                 AS gpu_memory_used_max_bytes,
           avg(s.power_w)                           AS gpu_power_mean_w
    FROM gpu_samples AS s
    WHERE s.time >= q.started_at
      AND s.time <= q.ended_at + interval '60 seconds'
      AND s.time - make_interval(secs => s.interval_s) <= q.ended_at
      AND s.error IS NULL
) AS g ON true
LEFT JOIN LATERAL (
    SELECT es.requests_running, es.requests_waiting, es.kv_cache_usage
    FROM engine_samples AS es
    WHERE es.model = q.model
      AND es.time <= q.started_at
      AND es.time > q.started_at - interval '1 minute'
    ORDER BY es.time DESC
    LIMIT 1
) AS en ON true
"""

# Cost of each LLM request (see README, "Cost"):
#   token pricing, where the model has a price:
#       input_tokens / 1000 * input price + output_tokens / 1000 * output price
#   else GPU-hour pricing, amortised over the hour the request started in:
#       (sum over GPUs polled in that hour of their $/hour)
#       * (the request's input + output tokens) / (tokens the engines processed that hour)
#   with the engines' prompt + generation token counters giving "tokens processed";
#   where no engine was scraped, the tokens of the hour's stored requests stand in.
# The hourly figures are computed over all stored data on each query (about 1 s for
# 100,000 requests: bench/joined_views.py); the dashboard's rollups will keep them.
REQUEST_COSTS_VIEW = """
CREATE VIEW llm_request_costs AS
WITH priced AS (
    SELECT q.trace_id, q.span_id, q.model, q.started_at,
           date_trunc('hour', q.started_at)                           AS hour,
           COALESCE(q.input_tokens, 0)                                AS input_tokens,
           COALESCE(q.output_tokens, 0)                               AS output_tokens,
           mp.input_usd_per_1k, mp.output_usd_per_1k
    FROM llm_requests AS q
    LEFT JOIN LATERAL (
        SELECT p.input_usd_per_1k, p.output_usd_per_1k
        FROM model_prices AS p
        WHERE q.model LIKE replace(replace(replace(p.model, '%', '\\%'), '_', '\\_'), '*', '%')
        ORDER BY p.model = q.model DESC, length(replace(p.model, '*', '')) DESC
        LIMIT 1
    ) AS mp ON true
), gpu_hours AS (
    SELECT hour, sum(usd_per_hour) AS gpu_usd
    FROM (
        SELECT DISTINCT date_trunc('hour', s.time) AS hour, s.host, s.gpu_index, s.name
        FROM gpu_samples AS s
    ) AS seen
    JOIN LATERAL (
        SELECT g.usd_per_hour
        FROM gpu_prices AS g
        WHERE seen.name ILIKE '%' || g.gpu || '%'
        ORDER BY length(g.gpu) DESC
        LIMIT 1
    ) AS price ON true
    GROUP BY hour
), engine_hours AS (
    SELECT date_trunc('hour', time) AS hour,
           sum(prompt_tokens_delta + generation_tokens_delta) AS tokens
    FROM engine_rates
    GROUP BY 1
), request_hours AS (
    SELECT hour, sum(input_tokens + output_tokens) AS tokens
    FROM priced
    WHERE input_usd_per_1k IS NULL
    GROUP BY hour
)
SELECT p.trace_id,
       p.span_id,
       p.model,
       p.started_at,
       p.input_tokens,
       p.output_tokens,
       CASE WHEN p.input_usd_per_1k IS NOT NULL THEN 'tokens'
            WHEN gh.gpu_usd IS NOT NULL THEN 'gpu_hours' END         AS cost_basis,
       CASE WHEN p.input_usd_per_1k IS NOT NULL
            THEN p.input_tokens / 1000.0 * p.input_usd_per_1k
                 + p.output_tokens / 1000.0 * p.output_usd_per_1k
            ELSE gh.gpu_usd * (p.input_tokens + p.output_tokens)
                 / NULLIF(COALESCE(NULLIF(eh.tokens, 0), rh.tokens), 0)
       END::double precision                                          AS cost_usd
FROM priced AS p
LEFT JOIN gpu_hours AS gh ON gh.hour = p.hour AND p.input_usd_per_1k IS NULL
LEFT JOIN engine_hours AS eh ON eh.hour = p.hour
LEFT JOIN request_hours AS rh ON rh.hour = p.hour
"""

COST_HOURLY_VIEW = """
CREATE VIEW cost_hourly AS
SELECT date_trunc('hour', started_at)                                     AS hour,
       model,
       count(*)                                                           AS requests,
       sum(input_tokens)                                                  AS input_tokens,
       sum(output_tokens)                                                 AS output_tokens,
       sum(cost_usd)                                                      AS cost_usd,
       sum(cost_usd) / count(*)                                           AS usd_per_request,
       sum(cost_usd) * 1000.0 / NULLIF(sum(input_tokens + output_tokens), 0) AS usd_per_1k_tokens
FROM llm_request_costs
GROUP BY 1, 2
"""


def upgrade() -> None:
    op.create_table(
        "engines",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False, unique=True),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.Text),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("last_scraped_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "engine_samples",
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("engine_id", sa.BigInteger, sa.ForeignKey("engines.id"), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("requests_running", sa.Float),
        sa.Column("requests_waiting", sa.Float),
        sa.Column("kv_cache_usage", sa.Float),
        sa.Column("preemptions", sa.Float),
        sa.Column("prompt_tokens", sa.Float),
        sa.Column("generation_tokens", sa.Float),
        sa.Column("prefix_cache_queries", sa.Float),
        sa.Column("prefix_cache_hits", sa.Float),
        sa.Column("spec_decode_drafts", sa.Float),
        sa.Column("spec_decode_draft_tokens", sa.Float),
        sa.Column("spec_decode_accepted_tokens", sa.Float),
        sa.Column("requests_finished", sa.Float),
        sa.Column("finished_by_reason", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("engine_id", "model", "time", name="pk_engine_samples"),
    )
    op.create_index("ix_engine_samples_model_time", "engine_samples", ["model", "time"])
    op.create_table(
        "gpu_samples",
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("gpu_index", sa.Integer, nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("uuid", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("utilization_gpu", sa.Float),
        sa.Column("utilization_memory", sa.Float),
        sa.Column("memory_used_bytes", sa.BigInteger),
        sa.Column("memory_total_bytes", sa.BigInteger),
        sa.Column("power_w", sa.Float),
        sa.Column("power_limit_w", sa.Float),
        sa.Column("temperature_c", sa.Float),
        sa.Column("sm_clock_mhz", sa.Integer),
        sa.Column("energy_mj", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("host", "gpu_index", "time", name="pk_gpu_samples"),
    )
    op.create_index("ix_gpu_samples_time", "gpu_samples", ["time"])
    op.create_table(
        "gpu_processes",
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("gpu_index", sa.Integer, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("used_memory_bytes", sa.BigInteger),
        sa.Column("is_vllm", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("host", "gpu_index", "pid", "time", name="pk_gpu_processes"),
    )
    op.create_index("ix_gpu_processes_time", "gpu_processes", ["time"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("trace_id", sa.Text(collation="C"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("normalized", sa.Float, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("idempotency_key", sa.Text, unique=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("kind IN ('thumbs', 'rating')", name="ck_feedback_kind"),
        sa.CheckConstraint("normalized BETWEEN 0 AND 1", name="ck_feedback_normalized"),
    )
    op.create_index("ix_feedback_trace_id", "feedback", ["trace_id"])
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])
    op.create_table(
        "model_prices",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("input_usd_per_1k", sa.Float, nullable=False),
        sa.Column("output_usd_per_1k", sa.Float, nullable=False),
    )
    op.create_table(
        "gpu_prices",
        sa.Column("gpu", sa.Text, primary_key=True),
        sa.Column("usd_per_hour", sa.Float, nullable=False),
    )
    op.execute(ENGINE_RATES_VIEW)
    op.execute(REQUEST_FEEDBACK_VIEW)
    op.execute(REQUEST_GPU_VIEW)
    op.execute(REQUEST_COSTS_VIEW)
    op.execute(COST_HOURLY_VIEW)


def downgrade() -> None:
    for view in (
        "cost_hourly",
        "llm_request_costs",
        "llm_request_gpu",
        "llm_request_feedback",
        "engine_rates",
    ):
        op.execute(f"DROP VIEW {view}")
    for table in (
        "gpu_prices",
        "model_prices",
        "feedback",
        "gpu_processes",
        "gpu_samples",
        "engine_samples",
        "engines",
    ):
        op.drop_table(table)
