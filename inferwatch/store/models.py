"""SQLAlchemy models of InferWatch's tables.

The schema itself is owned by the Alembic revisions in ``migrations/``; these
models mirror it for queries and tests. Views (``llm_requests`` and the others
the README lists) are defined in the revisions only, as SQL.
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
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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
        Index("ix_spans_llm_received_at", "received_at", postgresql_where=text("is_llm")),
        Index("ix_spans_llm_start_time", "start_time", postgresql_where=text("is_llm")),
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


class Engine(Base):
    """A vLLM server whose ``/metrics`` the collector scrapes (registered by URL)."""

    __tablename__ = "engines"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text, unique=True)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_scraped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class EngineSample(Base):
    """One scrape of one engine for one model: gauges as read, counters as cumulative values."""

    __tablename__ = "engine_samples"
    __table_args__ = (
        PrimaryKeyConstraint("engine_id", "model", "time", name="pk_engine_samples"),
        Index("ix_engine_samples_model_time", "model", "time"),
        Index("ix_engine_samples_time", "time"),
    )

    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    engine_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("engines.id"))
    model: Mapped[str] = mapped_column(Text)
    requests_running: Mapped[float | None] = mapped_column(Float)
    requests_waiting: Mapped[float | None] = mapped_column(Float)
    kv_cache_usage: Mapped[float | None] = mapped_column(Float)
    preemptions: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[float | None] = mapped_column(Float)
    generation_tokens: Mapped[float | None] = mapped_column(Float)
    prefix_cache_queries: Mapped[float | None] = mapped_column(Float)
    prefix_cache_hits: Mapped[float | None] = mapped_column(Float)
    spec_decode_drafts: Mapped[float | None] = mapped_column(Float)
    spec_decode_draft_tokens: Mapped[float | None] = mapped_column(Float)
    spec_decode_accepted_tokens: Mapped[float | None] = mapped_column(Float)
    requests_finished: Mapped[float | None] = mapped_column(Float)
    finished_by_reason: Mapped[dict[str, float]] = mapped_column(JSONB)


class GpuSample(Base):
    """One NVML poll of one GPU; ``error`` is set (and the readings empty) when it failed."""

    __tablename__ = "gpu_samples"
    __table_args__ = (
        PrimaryKeyConstraint("host", "gpu_index", "time", name="pk_gpu_samples"),
        Index("ix_gpu_samples_time", "time"),
    )

    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    host: Mapped[str] = mapped_column(Text)
    gpu_index: Mapped[int] = mapped_column(Integer)
    interval_s: Mapped[float] = mapped_column(Float)
    uuid: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    utilization_gpu: Mapped[float | None] = mapped_column(Float)
    utilization_memory: Mapped[float | None] = mapped_column(Float)
    memory_used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    power_w: Mapped[float | None] = mapped_column(Float)
    power_limit_w: Mapped[float | None] = mapped_column(Float)
    temperature_c: Mapped[float | None] = mapped_column(Float)
    sm_clock_mhz: Mapped[int | None] = mapped_column(Integer)
    energy_mj: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)


class GpuProcess(Base):
    """A process holding GPU memory at a poll; memory is None where NVML cannot tell."""

    __tablename__ = "gpu_processes"
    __table_args__ = (
        PrimaryKeyConstraint("host", "gpu_index", "pid", "time", name="pk_gpu_processes"),
        Index("ix_gpu_processes_time", "time"),
    )

    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    host: Mapped[str] = mapped_column(Text)
    gpu_index: Mapped[int] = mapped_column(Integer)
    pid: Mapped[int] = mapped_column(Integer)
    used_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    is_vllm: Mapped[bool] = mapped_column(Boolean)


class Feedback(Base):
    """A user's verdict on one request, keyed by its trace id (the request may arrive later)."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("kind IN ('thumbs', 'rating')", name="ck_feedback_kind"),
        CheckConstraint("normalized BETWEEN 0 AND 1", name="ck_feedback_normalized"),
        Index("ix_feedback_trace_id", "trace_id"),
        Index("ix_feedback_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    trace_id: Mapped[str] = mapped_column(Text(collation="C"))
    kind: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    normalized: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text, unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ModelPrice(Base):
    """$ per 1K tokens for models matching ``model`` (``*`` is a wildcard)."""

    __tablename__ = "model_prices"

    model: Mapped[str] = mapped_column(Text, primary_key=True)
    input_usd_per_1k: Mapped[float] = mapped_column(Float)
    output_usd_per_1k: Mapped[float] = mapped_column(Float)


class GpuPrice(Base):
    """$ per hour for GPUs whose NVML name contains ``gpu`` (case-insensitive)."""

    __tablename__ = "gpu_prices"

    gpu: Mapped[str] = mapped_column(Text, primary_key=True)
    usd_per_hour: Mapped[float] = mapped_column(Float)


class Evaluation(Base):
    """One evaluator's score of one request: 0 = fine, 1 = certainly a problem."""

    __tablename__ = "evaluations"
    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 1", name="ck_evaluations_score"),
        UniqueConstraint(
            "trace_id", "span_id", "evaluator", "evaluator_version", name="uq_evaluations_request"
        ),
        Index("ix_evaluations_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    trace_id: Mapped[str] = mapped_column(Text(collation="C"))
    span_id: Mapped[str] = mapped_column(Text(collation="C"))
    evaluator: Mapped[str] = mapped_column(Text)
    evaluator_version: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)
    flagged: Mapped[bool] = mapped_column(Boolean)
    explanation: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertState(Base):
    """A rule instance (rule + label set) that is pending, firing or recently resolved."""

    __tablename__ = "alert_states"
    __table_args__ = (
        PrimaryKeyConstraint("rule", "fingerprint", name="pk_alert_states"),
        CheckConstraint("state IN ('inactive', 'pending', 'firing')", name="ck_alert_states_state"),
    )

    rule: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    active_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_true_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertEvent(Base):
    """One transition of a rule instance (inactive → pending → firing → inactive)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rule: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB)
    from_state: Mapped[str] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)


class AlertGroup(Base):
    """A receiver's aggregation group and what it last told it (Alertmanager's nflog)."""

    __tablename__ = "alert_groups"
    __table_args__ = (PrimaryKeyConstraint("receiver", "group_key", name="pk_alert_groups"),)

    receiver: Mapped[str] = mapped_column(Text)
    group_key: Mapped[str] = mapped_column(Text)
    group_labels: Mapped[dict[str, str]] = mapped_column(JSONB)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_flush_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notified_firing: Mapped[list[str]] = mapped_column(ARRAY(Text))
    notified_resolved: Mapped[list[str]] = mapped_column(ARRAY(Text))


class AlertDelivery(Base):
    """A notification to send (the outbox), then the record of how it went."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('firing', 'resolved')", name="ck_alert_deliveries_status"),
        CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')", name="ck_alert_deliveries_state"
        ),
        Index(
            "ix_alert_deliveries_pending",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    receiver: Mapped[str] = mapped_column(Text)
    group_key: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertSilence(Base):
    """Notifications for alerts matching every matcher are held back between the two times."""

    __tablename__ = "alert_silences"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ck_alert_silences_window"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    matchers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EvaluationJob(Base):
    """One request to score with one evaluator: queued, running (leased), done, skipped, parked."""

    __tablename__ = "evaluation_jobs"
    __table_args__ = (
        UniqueConstraint("trace_id", "span_id", "evaluator", name="uq_evaluation_jobs_request"),
        CheckConstraint(
            "state IN ('queued', 'running', 'done', 'skipped', 'parked')",
            name="ck_evaluation_jobs_state",
        ),
        Index(
            "ix_evaluation_jobs_open", "id", postgresql_where=text("state IN ('queued', 'running')")
        ),
        Index("ix_evaluation_jobs_created_at", "evaluator", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    trace_id: Mapped[str] = mapped_column(Text(collation="C"))
    span_id: Mapped[str] = mapped_column(Text(collation="C"))
    evaluator: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvaluationCursor(Base):
    """How far the sampler has read a stream (new requests, new feedback)."""

    __tablename__ = "evaluation_cursors"

    stream: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The dashboard's rollups (collector/rollups.py keeps them): per minute and per hour.


def _rollup_args(name: str, *key: str) -> tuple[Any, ...]:
    return (
        PrimaryKeyConstraint("resolution", "bucket", *key, name=f"pk_{name}"),
        CheckConstraint("resolution IN ('minute', 'hour')", name=f"ck_{name}_resolution"),
    )


class _Rollup:
    resolution: Mapped[str] = mapped_column(Text)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RollupRequests(_Rollup, Base):
    __tablename__ = "rollup_requests"
    __table_args__ = _rollup_args(__tablename__, "model")

    model: Mapped[str] = mapped_column(Text)
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    ttft_ms_sum: Mapped[float | None] = mapped_column(Float)
    ttft_count: Mapped[int | None] = mapped_column(Integer)
    tpot_ms_sum: Mapped[float | None] = mapped_column(Float)
    tpot_count: Mapped[int | None] = mapped_column(Integer)
    e2e_ms_sum: Mapped[float | None] = mapped_column(Float)
    e2e_count: Mapped[int | None] = mapped_column(Integer)
    queue_ms_sum: Mapped[float | None] = mapped_column(Float)
    queue_count: Mapped[int | None] = mapped_column(Integer)
    prefill_ms_sum: Mapped[float | None] = mapped_column(Float)
    prefill_count: Mapped[int | None] = mapped_column(Integer)
    decode_ms_sum: Mapped[float | None] = mapped_column(Float)
    decode_count: Mapped[int | None] = mapped_column(Integer)
    token_cost_usd: Mapped[float] = mapped_column(Float)
    unpriced_tokens: Mapped[int] = mapped_column(BigInteger)


class RollupLatency(_Rollup, Base):
    __tablename__ = "rollup_latency"
    __table_args__ = _rollup_args(__tablename__, "metric", "model", "bin")

    model: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(Text)
    bin: Mapped[int] = mapped_column(SmallInteger)
    requests: Mapped[int] = mapped_column(Integer)


class RollupEvaluations(_Rollup, Base):
    __tablename__ = "rollup_evaluations"
    __table_args__ = _rollup_args(__tablename__, "model", "evaluator")

    model: Mapped[str] = mapped_column(Text)
    evaluator: Mapped[str] = mapped_column(Text)
    scored: Mapped[int] = mapped_column(Integer)
    flagged: Mapped[int] = mapped_column(Integer)
    score_sum: Mapped[float] = mapped_column(Float)


class RollupGpu(_Rollup, Base):
    __tablename__ = "rollup_gpu"
    __table_args__ = _rollup_args(__tablename__, "host", "gpu_index")

    host: Mapped[str] = mapped_column(Text)
    gpu_index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(Text)
    samples: Mapped[int] = mapped_column(Integer)
    utilization_sum: Mapped[float | None] = mapped_column(Float)
    utilization_max: Mapped[float | None] = mapped_column(Float)
    memory_utilization_sum: Mapped[float | None] = mapped_column(Float)
    memory_used_max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    power_sum_w: Mapped[float | None] = mapped_column(Float)
    power_limit_w: Mapped[float | None] = mapped_column(Float)
    temperature_max_c: Mapped[float | None] = mapped_column(Float)


class RollupEngine(_Rollup, Base):
    __tablename__ = "rollup_engine"
    __table_args__ = _rollup_args(__tablename__, "engine_id", "model")

    engine_id: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(Text)
    samples: Mapped[int] = mapped_column(Integer)
    interval_s: Mapped[float] = mapped_column(Float)
    requests_running_sum: Mapped[float | None] = mapped_column(Float)
    requests_waiting_sum: Mapped[float | None] = mapped_column(Float)
    requests_waiting_max: Mapped[float | None] = mapped_column(Float)
    kv_cache_usage_sum: Mapped[float | None] = mapped_column(Float)
    kv_cache_usage_max: Mapped[float | None] = mapped_column(Float)
    preemptions: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[float | None] = mapped_column(Float)
    generation_tokens: Mapped[float | None] = mapped_column(Float)
    prefix_cache_queries: Mapped[float | None] = mapped_column(Float)
    prefix_cache_hits: Mapped[float | None] = mapped_column(Float)
    spec_decode_draft_tokens: Mapped[float | None] = mapped_column(Float)
    spec_decode_accepted_tokens: Mapped[float | None] = mapped_column(Float)
    requests_finished: Mapped[float | None] = mapped_column(Float)


class RollupCursor(Base):
    """How far a rollup has read its source, by the time rows were stored."""

    __tablename__ = "rollup_cursors"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    watermark: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
