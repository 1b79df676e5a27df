"""Alerting: rule instances' states, their transitions, notification groups, deliveries, silences

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # One row per rule instance (a rule and one label set) that is pending, firing,
    # or resolved recently enough that its resolution may still be notified.
    op.create_table(
        "alert_states",
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("annotations", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("active_since", TZ),
        sa.Column("fired_at", TZ),
        sa.Column("last_true_at", TZ),
        sa.Column("resolved_at", TZ),
        sa.Column("evaluated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("rule", "fingerprint", name="pk_alert_states"),
        sa.CheckConstraint(
            "state IN ('inactive', 'pending', 'firing')", name="ck_alert_states_state"
        ),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("from_state", sa.Text, nullable=False),
        sa.Column("to_state", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
    )
    op.create_index("ix_alert_events_at", "alert_events", ["at"])
    # Alertmanager's aggregation groups and notification log, per receiver.
    op.create_table(
        "alert_groups",
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("group_labels", JSONB, nullable=False),
        sa.Column("first_seen_at", TZ, nullable=False),
        sa.Column("last_flush_at", TZ),
        sa.Column("last_sent_at", TZ),
        sa.Column("notified_firing", ARRAY(sa.Text), nullable=False),
        sa.Column("notified_resolved", ARRAY(sa.Text), nullable=False),
        sa.PrimaryKeyConstraint("receiver", "group_key", name="pk_alert_groups"),
    )
    # An outbox: a notification is written in the evaluation's transaction and
    # delivered after, with retries; the row then stays as the delivery log.
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("receiver", sa.Text, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ),
        sa.CheckConstraint("status IN ('firing', 'resolved')", name="ck_alert_deliveries_status"),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')", name="ck_alert_deliveries_state"
        ),
    )
    op.create_index(
        "ix_alert_deliveries_pending",
        "alert_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("matchers", JSONB, nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("ends_at > starts_at", name="ck_alert_silences_window"),
    )


def downgrade() -> None:
    for table in ("alert_silences", "alert_deliveries", "alert_groups", "alert_events"):
        op.drop_table(table)
    op.drop_table("alert_states")
