"""SQLAlchemy models of InferWatch's tables.

The schema itself is owned by the Alembic revisions in ``migrations/``; these
models mirror it for queries and tests. Views (``llm_requests``) are defined in
the revisions only, as SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Span(Base):
    """One OTLP span, stored at most once per (trace_id, span_id).

    Ids are lowercase hex (32 and 16 characters), as trace viewers show them.
    The typed LLM columns are lifted from the attributes at ingest; the
    attributes themselves are kept whole in ``attributes``.
    """

    __tablename__ = "spans"
    __table_args__ = (
        PrimaryKeyConstraint("trace_id", "span_id", name="pk_spans"),
        CheckConstraint("status_code IN ('UNSET', 'OK', 'ERROR')", name="ck_spans_status_code"),
        Index("ix_spans_start_time", "start_time", postgresql_using="brin"),
        Index(
            "ix_spans_llm_model_start_time", "model", "start_time", postgresql_where=text("is_llm")
        ),
        Index(
            "ix_spans_llm_errors_start_time",
            "start_time",
            postgresql_where=text("is_llm AND status_code = 'ERROR'"),
        ),
    )

    trace_id: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    span_id: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(Text(collation="C"))
    trace_state: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    service_name: Mapped[str | None] = mapped_column(Text)
    scope_name: Mapped[str | None] = mapped_column(Text)
    scope_version: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_time_unix_nano: Mapped[int] = mapped_column(BigInteger)
    end_time_unix_nano: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[str] = mapped_column(Text)
    status_message: Mapped[str | None] = mapped_column(Text)
    resource: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    events: Mapped[list[Any]] = mapped_column(JSONB)
    links: Mapped[list[Any]] = mapped_column(JSONB)
    is_llm: Mapped[bool] = mapped_column(Boolean)
    operation: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    tpot_ms: Mapped[float | None] = mapped_column(Float)
    e2e_ms: Mapped[float | None] = mapped_column(Float)
    queue_ms: Mapped[float | None] = mapped_column(Float)
    prefill_ms: Mapped[float | None] = mapped_column(Float)
    decode_ms: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(Text)
    completion: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
