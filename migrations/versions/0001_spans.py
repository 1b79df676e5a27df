"""spans table and the llm_requests view

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per LLM request. A request is anchored on its top LLM span (an LLM
# span whose parent is not an LLM span: normally the gateway's CLIENT span) and
# merged with the LLM span directly below it (normally vLLM's ``llm_request``).
# Latency as the caller saw it comes from the top span, the engine's phases
# from the span below.
LLM_REQUESTS_VIEW = """
CREATE VIEW llm_requests AS
SELECT
    r.trace_id,
    r.span_id,
    e.span_id                                   AS engine_span_id,
    COALESCE(r.model, e.model)                  AS model,
    COALESCE(r.operation, e.operation)          AS operation,
    COALESCE(r.provider, e.provider)            AS provider,
    r.service_name,
    r.start_time                                AS started_at,
    r.end_time                                  AS ended_at,
    COALESCE(r.ttft_ms, e.ttft_ms)              AS ttft_ms,
    COALESCE(r.tpot_ms, e.tpot_ms)              AS tpot_ms,
    COALESCE(r.e2e_ms, e.e2e_ms)                AS e2e_ms,
    COALESCE(e.queue_ms, r.queue_ms)            AS queue_ms,
    COALESCE(e.prefill_ms, r.prefill_ms)        AS prefill_ms,
    COALESCE(e.decode_ms, r.decode_ms)          AS decode_ms,
    COALESCE(r.input_tokens, e.input_tokens)    AS input_tokens,
    COALESCE(r.output_tokens, e.output_tokens)  AS output_tokens,
    CASE WHEN r.status_code = 'ERROR' OR e.status_code = 'ERROR'
         THEN 'error' ELSE 'ok' END             AS status,
    CASE WHEN r.status_code = 'ERROR'
         THEN COALESCE(NULLIF(r.status_message, ''), r.attributes ->> 'error.type', 'error')
         WHEN e.status_code = 'ERROR'
         THEN COALESCE(NULLIF(e.status_message, ''), e.attributes ->> 'error.type', 'error')
    END                                         AS error,
    COALESCE(r.attributes ->> 'error.type', e.attributes ->> 'error.type') AS error_type,
    COALESCE(r.finish_reason, e.finish_reason)  AS finish_reason,
    COALESCE(r.request_id, e.request_id)        AS request_id,
    COALESCE(r.prompt, e.prompt)                AS prompt,
    COALESCE(r.completion, e.completion)        AS completion
FROM spans AS r
LEFT JOIN LATERAL (
    SELECT c.span_id, c.model, c.operation, c.provider, c.ttft_ms, c.tpot_ms, c.e2e_ms,
           c.queue_ms, c.prefill_ms, c.decode_ms, c.input_tokens, c.output_tokens,
           c.status_code, c.status_message, c.attributes, c.finish_reason, c.request_id,
           c.prompt, c.completion
    FROM spans AS c
    WHERE c.trace_id = r.trace_id AND c.parent_span_id = r.span_id AND c.is_llm
    ORDER BY c.queue_ms IS NULL, c.start_time
    LIMIT 1
) AS e ON true
WHERE r.is_llm
  AND NOT EXISTS (
      SELECT 1 FROM spans AS p
      WHERE p.trace_id = r.trace_id AND p.span_id = r.parent_span_id AND p.is_llm
  )
"""


def upgrade() -> None:
    op.create_table(
        "spans",
        # Ids compare bytewise ("C"): hex has no linguistic order, and it keeps the
        # primary key cheap to maintain whatever the database's default collation.
        sa.Column("trace_id", sa.Text(collation="C"), nullable=False),
        sa.Column("span_id", sa.Text(collation="C"), nullable=False),
        sa.Column("parent_span_id", sa.Text(collation="C")),
        sa.Column("trace_state", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("service_name", sa.Text),
        sa.Column("scope_name", sa.Text),
        sa.Column("scope_version", sa.Text),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_time_unix_nano", sa.BigInteger, nullable=False),
        sa.Column("end_time_unix_nano", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status_code", sa.Text, nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("resource", JSONB, nullable=False),
        sa.Column("attributes", JSONB, nullable=False),
        sa.Column("events", JSONB, nullable=False),
        sa.Column("links", JSONB, nullable=False),
        sa.Column("is_llm", sa.Boolean, nullable=False),
        sa.Column("operation", sa.Text),
        sa.Column("provider", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("tpot_ms", sa.Float),
        sa.Column("e2e_ms", sa.Float),
        sa.Column("queue_ms", sa.Float),
        sa.Column("prefill_ms", sa.Float),
        sa.Column("decode_ms", sa.Float),
        sa.Column("finish_reason", sa.Text),
        sa.Column("request_id", sa.Text),
        sa.Column("prompt", sa.Text),
        sa.Column("completion", sa.Text),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name="pk_spans"),
        sa.CheckConstraint("status_code IN ('UNSET', 'OK', 'ERROR')", name="ck_spans_status_code"),
    )
    # Spans arrive roughly in time order: a BRIN index serves time ranges over all
    # spans for a fraction of a btree's upkeep; LLM queries have their own btrees.
    op.create_index("ix_spans_start_time", "spans", ["start_time"], postgresql_using="brin")
    op.create_index(
        "ix_spans_llm_model_start_time",
        "spans",
        ["model", "start_time"],
        postgresql_where=sa.text("is_llm"),
    )
    op.create_index(
        "ix_spans_llm_errors_start_time",
        "spans",
        ["start_time"],
        postgresql_where=sa.text("is_llm AND status_code = 'ERROR'"),
    )
    op.execute(LLM_REQUESTS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW llm_requests")
    op.drop_table("spans")
