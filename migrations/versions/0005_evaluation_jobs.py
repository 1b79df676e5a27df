"""Evaluation jobs: the durable queue the evaluator workers claim from, and the sampler's cursors

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluation_jobs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("trace_id", sa.Text(collation="C"), nullable=False),
        sa.Column("span_id", sa.Text(collation="C"), nullable=False),
        sa.Column("evaluator", sa.Text, nullable=False),
        # Why it was sampled: base_rate, error, negative_feedback, manual, ...
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="queued"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        # A claimed job belongs to its worker until then; after, anyone may take it.
        sa.Column("lease_until", TZ),
        sa.Column("not_before", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", TZ),
        sa.UniqueConstraint("trace_id", "span_id", "evaluator", name="uq_evaluation_jobs_request"),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'skipped', 'parked')",
            name="ck_evaluation_jobs_state",
        ),
    )
    op.create_index(
        "ix_evaluation_jobs_open",
        "evaluation_jobs",
        ["id"],
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )
    op.create_index("ix_evaluation_jobs_created_at", "evaluation_jobs", ["evaluator", "created_at"])
    # Where the sampler has read up to, per stream (requests, feedback).
    op.create_table(
        "evaluation_cursors",
        sa.Column("stream", sa.Text, primary_key=True),
        sa.Column("position", TZ, nullable=False),
    )
    # New LLM spans in arrival order, for the sampler (received_at only grows).
    op.create_index(
        "ix_spans_llm_received_at",
        "spans",
        ["received_at"],
        postgresql_where=sa.text("is_llm"),
    )


def downgrade() -> None:
    op.drop_index("ix_spans_llm_received_at", table_name="spans")
    op.drop_table("evaluation_cursors")
    op.drop_table("evaluation_jobs")
