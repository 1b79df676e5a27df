"""Minute and hour rollups for the dashboard (with latency histograms), and the alert views

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
RESOLUTION_CHECK = "resolution IN ('minute', 'hour')"

# Latency histograms use log-spaced bins: bin 0 holds values under 0.1 ms, bin b >= 1
# holds [0.1 * 1.1^(b-1), 0.1 * 1.1^b) ms, the last bin (200, from about 5 hours) holds
# everything longer. A percentile read from the bins is within 5 % of the true value.
LATENCY_FUNCTIONS = """
CREATE FUNCTION latency_bin(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms IS NULL THEN NULL
                WHEN ms < 0.1 THEN 0
                ELSE LEAST(200, 1 + floor(ln(ms / 0.1) / ln(1.1)))::integer END
$$;
CREATE FUNCTION latency_bin_ms(bin integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN bin <= 0 THEN 0.0 ELSE 0.1 * power(1.1, bin - 0.5) END
$$;
"""

# The price of a model: an exact match, else the longest matching wildcard pattern.
MODEL_PRICE_FUNCTION = """
CREATE FUNCTION model_price(model text)
RETURNS TABLE (input_usd_per_1k double precision, output_usd_per_1k double precision)
LANGUAGE sql STABLE AS $$
    SELECT p.input_usd_per_1k, p.output_usd_per_1k
    FROM model_prices AS p
    WHERE $1 LIKE replace(replace(replace(p.model, '%', '\\%'), '_', '\\_'), '*', '%')
    ORDER BY p.model = $1 DESC, length(replace(p.model, '*', '')) DESC
    LIMIT 1
$$;
"""

ALERTS_ACTIVE_VIEW = """
CREATE VIEW alerts_active AS
SELECT rule,
       labels ->> 'severity'              AS severity,
       state,
       value,
       labels,
       annotations ->> 'summary'          AS summary,
       annotations,
       active_since,
       fired_at,
       evaluated_at,
       fingerprint
FROM alert_states
WHERE state IN ('pending', 'firing')
"""

ALERT_HISTORY_VIEW = """
CREATE VIEW alert_history AS
SELECT e.at,
       e.rule,
       e.labels ->> 'severity' AS severity,
       e.from_state,
       e.to_state,
       e.value,
       e.labels,
       e.fingerprint
FROM alert_events AS e
"""


def _rollup(name: str, *columns: sa.Column[Any], key: Sequence[str]) -> None:
    op.create_table(
        name,
        sa.Column("resolution", sa.Text, nullable=False),
        sa.Column("bucket", TZ, nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("resolution", "bucket", *key, name=f"pk_{name}"),
        sa.CheckConstraint(RESOLUTION_CHECK, name=f"ck_{name}_resolution"),
    )


def _sum_count(metric: str) -> list[sa.Column[Any]]:
    return [sa.Column(f"{metric}_ms_sum", sa.Float), sa.Column(f"{metric}_count", sa.Integer)]


def upgrade() -> None:
    op.execute(LATENCY_FUNCTIONS)
    op.execute(MODEL_PRICE_FUNCTION)
    # Per minute and per hour (``resolution``), per model ('' where a request named none).
    _rollup(
        "rollup_requests",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        *_sum_count("ttft"),
        *_sum_count("tpot"),
        *_sum_count("e2e"),
        *_sum_count("queue"),
        *_sum_count("prefill"),
        *_sum_count("decode"),
        # Cost of the requests whose model has a token price; the tokens of the others
        # (GPU-hour pricing shares each hour's GPU cost among them).
        sa.Column("token_cost_usd", sa.Float, nullable=False),
        sa.Column("unpriced_tokens", sa.BigInteger, nullable=False),
        key=["model"],
    )
    # Requests per latency bin (see latency_bin), for percentiles over any range.
    _rollup(
        "rollup_latency",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("bin", sa.SmallInteger, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        key=["metric", "model", "bin"],
    )
    # Evaluations by the minute their request started (the latest version's latest score).
    _rollup(
        "rollup_evaluations",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("evaluator", sa.Text, nullable=False),
        sa.Column("scored", sa.Integer, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False),
        sa.Column("score_sum", sa.Float, nullable=False),
        key=["model", "evaluator"],
    )
    _rollup(
        "rollup_gpu",
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("gpu_index", sa.Integer, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("utilization_sum", sa.Float),
        sa.Column("utilization_max", sa.Float),
        sa.Column("memory_utilization_sum", sa.Float),
        sa.Column("memory_used_max_bytes", sa.BigInteger),
        sa.Column("memory_total_bytes", sa.BigInteger),
        sa.Column("power_sum_w", sa.Float),
        sa.Column("power_limit_w", sa.Float),
        sa.Column("temperature_max_c", sa.Float),
        key=["host", "gpu_index"],
    )
    # Gauges as sums over samples (divide by ``samples``), counters as summed deltas.
    _rollup(
        "rollup_engine",
        sa.Column("engine_id", sa.BigInteger, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("requests_running_sum", sa.Float),
        sa.Column("requests_waiting_sum", sa.Float),
        sa.Column("requests_waiting_max", sa.Float),
        sa.Column("kv_cache_usage_sum", sa.Float),
        sa.Column("kv_cache_usage_max", sa.Float),
        sa.Column("preemptions", sa.Float),
        sa.Column("prompt_tokens", sa.Float),
        sa.Column("generation_tokens", sa.Float),
        sa.Column("prefix_cache_queries", sa.Float),
        sa.Column("prefix_cache_hits", sa.Float),
        sa.Column("spec_decode_draft_tokens", sa.Float),
        sa.Column("spec_decode_accepted_tokens", sa.Float),
        sa.Column("requests_finished", sa.Float),
        key=["engine_id", "model"],
    )
    # How far each rollup has read its source (by the time rows were stored).
    op.create_table(
        "rollup_cursors",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("watermark", TZ, nullable=False),
        sa.Column("refreshed_at", TZ, nullable=False),
    )
    # The rollups find new engine samples by time; the trace list orders requests by time.
    op.create_index("ix_engine_samples_time", "engine_samples", ["time"])
    op.create_index(
        "ix_spans_llm_start_time", "spans", ["start_time"], postgresql_where=sa.text("is_llm")
    )
    op.execute(ALERTS_ACTIVE_VIEW)
    op.execute(ALERT_HISTORY_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW alert_history")
    op.execute("DROP VIEW alerts_active")
    op.drop_index("ix_spans_llm_start_time", "spans")
    op.drop_index("ix_engine_samples_time", "engine_samples")
    for table in (
        "rollup_cursors",
        "rollup_engine",
        "rollup_gpu",
        "rollup_evaluations",
        "rollup_latency",
        "rollup_requests",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION model_price(text)")
    op.execute("DROP FUNCTION latency_bin_ms(integer)")
    op.execute("DROP FUNCTION latency_bin(double precision)")
