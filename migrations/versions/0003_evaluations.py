"""Evaluations: quality scores of LLM requests (toxicity, hallucination risk, ...)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One row per request and evaluator: the latest version's latest score.
REQUEST_EVALUATIONS_VIEW = """
CREATE VIEW llm_request_evaluations AS
SELECT DISTINCT ON (e.trace_id, e.span_id, e.evaluator)
       e.trace_id,
       e.span_id,
       s.model,
       s.start_time AS started_at,
       e.evaluator,
       e.evaluator_version,
       e.score,
       e.label,
       e.flagged,
       e.explanation,
       e.evidence,
       e.latency_ms,
       e.created_at
FROM evaluations AS e
LEFT JOIN spans AS s ON s.trace_id = e.trace_id AND s.span_id = e.span_id
ORDER BY e.trace_id, e.span_id, e.evaluator, e.created_at DESC, e.id DESC
"""


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("trace_id", sa.Text(collation="C"), nullable=False),
        # The request's top LLM span (``llm_requests.span_id``).
        sa.Column("span_id", sa.Text(collation="C"), nullable=False),
        sa.Column("evaluator", sa.Text, nullable=False),
        sa.Column("evaluator_version", sa.Text, nullable=False),
        # 0 = fine, 1 = certainly toxic / unsupported: every evaluator scores risk.
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("label", sa.Text),
        # The score reached the evaluator's threshold (what rates and alerts count).
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("explanation", sa.Text),
        sa.Column("evidence", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("latency_ms", sa.Float),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("score BETWEEN 0 AND 1", name="ck_evaluations_score"),
        sa.UniqueConstraint(
            "trace_id", "span_id", "evaluator", "evaluator_version", name="uq_evaluations_request"
        ),
    )
    op.create_index("ix_evaluations_created_at", "evaluations", ["created_at"])
    op.execute(REQUEST_EVALUATIONS_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW llm_request_evaluations")
    op.drop_table("evaluations")
