"""The metrics alert rules can name, each a column of a documented view or table.

A rule names a metric and an aggregation; it never carries SQL. Each metric
here says where its rows come from (a *source*: a view or table with a time
column and the labels rules may filter and group by), what its value is, and
whether it is a number (latency, utilisation, dollars) or an event that is
true or false per row (an error, a flagged evaluation, a thumbs-down).
``alerting.query`` turns a rule into SQLAlchemy Core over these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, Text, and_, case, cast, column, func, literal, select, table
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause


class Kind(StrEnum):
    NUMBER = "number"  # avg, min, max, sum, percentiles, count and rate of rows
    EVENT = "event"  # ratio (share of rows where true), count and rate of true rows


class Aggregation(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    RATE = "rate"  # count per second over the window
    RATIO = "ratio"  # share of rows where the event is true
    P50 = "p50"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"


AGGREGATIONS_OF: dict[Kind, frozenset[Aggregation]] = {
    Kind.NUMBER: frozenset(Aggregation) - {Aggregation.RATIO},
    Kind.EVENT: frozenset({Aggregation.RATIO, Aggregation.COUNT, Aggregation.RATE}),
}
# With no rows these are 0 (nothing happened), not "no data".
ZERO_WHEN_EMPTY = frozenset({Aggregation.COUNT, Aggregation.RATE, Aggregation.SUM})
PERCENTILES = {
    Aggregation.P50: 0.50,
    Aggregation.P90: 0.90,
    Aggregation.P95: 0.95,
    Aggregation.P99: 0.99,
}


@dataclass(frozen=True)
class Source:
    """Rows with a time and labels: a view or table, or a join over them."""

    name: str
    rows: FromClause
    time: ColumnElement[Any]
    labels: Mapping[str, ColumnElement[Any]]
    # The columns metrics are computed from (for a join: the main table's).
    c: Any


@dataclass(frozen=True)
class Metric:
    name: str
    source: Source
    value: ColumnElement[Any]
    kind: Kind
    unit: str
    description: str
    # Rows of the source this metric counts (e.g. one evaluator's scores).
    where: tuple[ColumnElement[Any], ...] = field(default=())


def _requests() -> Source:
    q = table(
        "llm_requests",
        *(
            column(name)
            for name in (
                "started_at",
                "model",
                "service_name",
                "operation",
                "status",
                "error_type",
                "ttft_ms",
                "tpot_ms",
                "e2e_ms",
                "queue_ms",
                "prefill_ms",
                "decode_ms",
                "input_tokens",
                "output_tokens",
            )
        ),
    )
    return Source(
        "llm_requests",
        q,
        q.c.started_at,
        {"model": q.c.model, "service": q.c.service_name, "operation": q.c.operation},
        q.c,
    )


def _gpus() -> Source:
    g = table(
        "gpu_samples",
        *(
            column(name)
            for name in (
                "time",
                "host",
                "gpu_index",
                "name",
                "utilization_gpu",
                "memory_used_bytes",
                "memory_total_bytes",
                "temperature_c",
                "power_w",
            )
        ),
    )
    return Source(
        "gpu_samples",
        g,
        g.c.time,
        {"host": g.c.host, "gpu": cast(g.c.gpu_index, Text), "gpu_name": g.c.name},
        g.c,
    )


def _engine_samples() -> Source:
    s = table(
        "engine_samples",
        *(
            column(n)
            for n in ("time", "engine_id", "model", "requests_running", "requests_waiting")
        ),
        column("kv_cache_usage"),
    )
    e = table("engines", column("id"), column("name"))
    rows = s.join(e, e.c.id == s.c.engine_id)
    labels = {"engine": e.c.name, "model": s.c.model}
    return Source("engine_samples", rows, s.c.time, labels, s.c)


def _engine_rates() -> Source:
    r = table(
        "engine_rates",
        *(
            column(n)
            for n in (
                "time",
                "engine",
                "model",
                "preemptions_per_s",
                "generation_tokens_per_s",
                "prefix_cache_hit_rate",
                "spec_decode_acceptance_rate",
            )
        ),
    )
    return Source("engine_rates", r, r.c.time, {"engine": r.c.engine, "model": r.c.model}, r.c)


def _model_of(trace_id: ColumnElement[Any], span_id: ColumnElement[Any] | None) -> Any:
    """The model of a request's LLM span (by span when known, else any in the trace)."""
    s = table("spans", column("trace_id"), column("span_id"), column("model"), column("is_llm"))
    match = s.c.span_id == span_id if span_id is not None else s.c.is_llm
    return (
        select(s.c.model)
        .where(s.c.trace_id == trace_id, match, s.c.model.is_not(None))
        .limit(1)
        .scalar_subquery()
    )


def _evaluations() -> Source:
    e = table(
        "evaluations",
        *(
            column(n)
            for n in ("trace_id", "span_id", "evaluator", "score", "flagged", "created_at")
        ),
    )
    rows = select(e, _model_of(e.c.trace_id, e.c.span_id).label("model")).subquery("evaluated")
    return Source(
        "evaluations",
        rows,
        rows.c.created_at,
        {"evaluator": rows.c.evaluator, "model": rows.c.model},
        rows.c,
    )


def _feedback() -> Source:
    f = table("feedback", column("trace_id"), column("normalized"), column("received_at"))
    rows = select(f, _model_of(f.c.trace_id, None).label("model")).subquery("feedback_given")
    return Source("feedback", rows, rows.c.received_at, {"model": rows.c.model}, rows.c)


def _costs() -> Source:
    c = table("llm_request_costs", column("started_at"), column("model"), column("cost_usd"))
    return Source("llm_request_costs", c, c.c.started_at, {"model": c.c.model}, c.c)


def _build() -> dict[str, Metric]:
    req, gpu, eng, rates = _requests(), _gpus(), _engine_samples(), _engine_rates()
    ev, fb, cost = _evaluations(), _feedback(), _costs()
    rc, gc, ec, rtc, evc = req.c, gpu.c, eng.c, rates.c, ev.c
    num, event = Kind.NUMBER, Kind.EVENT
    timeout_types = ("timeout", "408", "504")
    metrics = [
        Metric("requests", req, literal(True), event, "requests", "every LLM request"),
        Metric("errors", req, rc.status == "error", event, "requests", "requests that failed"),
        Metric(
            "timeouts",
            req,
            and_(rc.status == "error", rc.error_type.in_(timeout_types)),
            event,
            "requests",
            "requests that failed on a timeout",
        ),
        Metric("ttft_ms", req, rc.ttft_ms, num, "ms", "time to first token"),
        Metric("tpot_ms", req, rc.tpot_ms, num, "ms", "time per output token"),
        Metric("e2e_ms", req, rc.e2e_ms, num, "ms", "request latency, end to end"),
        Metric("queue_ms", req, rc.queue_ms, num, "ms", "time waiting in vLLM's queue"),
        Metric("prefill_ms", req, rc.prefill_ms, num, "ms", "vLLM prefill time"),
        Metric("decode_ms", req, rc.decode_ms, num, "ms", "vLLM decode time"),
        Metric("input_tokens", req, rc.input_tokens, num, "tokens", "prompt tokens per request"),
        Metric("output_tokens", req, rc.output_tokens, num, "tokens", "output tokens per request"),
        Metric("gpu_utilization_pct", gpu, gc.utilization_gpu, num, "%", "GPU busy time"),
        Metric(
            "gpu_memory_used_pct",
            gpu,
            100.0 * gc.memory_used_bytes / func.nullif(gc.memory_total_bytes, 0),
            num,
            "%",
            "GPU memory in use",
        ),
        Metric("gpu_temperature_c", gpu, gc.temperature_c, num, "°C", "GPU temperature"),
        Metric("gpu_power_w", gpu, gc.power_w, num, "W", "GPU power draw"),
        Metric(
            "engine_requests_waiting",
            eng,
            ec.requests_waiting,
            num,
            "requests",
            "requests queued in vLLM",
        ),
        Metric(
            "engine_requests_running",
            eng,
            ec.requests_running,
            num,
            "requests",
            "requests vLLM is running",
        ),
        Metric(
            "engine_kv_cache_usage_pct",
            eng,
            100.0 * ec.kv_cache_usage,
            num,
            "%",
            "vLLM KV-cache blocks in use",
        ),
        Metric(
            "engine_preemptions_per_s",
            rates,
            rtc.preemptions_per_s,
            num,
            "1/s",
            "requests vLLM preempted",
        ),
        Metric(
            "engine_generation_tokens_per_s",
            rates,
            rtc.generation_tokens_per_s,
            num,
            "tokens/s",
            "tokens vLLM generated",
        ),
        Metric(
            "engine_prefix_cache_hit_rate",
            rates,
            rtc.prefix_cache_hit_rate,
            num,
            "ratio",
            "prefix-cache hits per query",
        ),
        Metric(
            "engine_spec_decode_acceptance_rate",
            rates,
            rtc.spec_decode_acceptance_rate,
            num,
            "ratio",
            "speculative tokens accepted per drafted",
        ),
        Metric(
            "evaluation_score",
            ev,
            evc.score,
            num,
            "score",
            "evaluator scores (0 fine … 1 bad)",
        ),
        Metric("evaluations_flagged", ev, evc.flagged, event, "requests", "evaluations flagged"),
        Metric(
            "toxic",
            ev,
            evc.flagged,
            event,
            "requests",
            "requests the toxicity evaluator flagged",
            where=(evc.evaluator.like("toxicity%"),),
        ),
        Metric(
            "hallucination_risk",
            ev,
            evc.flagged,
            event,
            "requests",
            "requests a hallucination evaluator flagged",
            where=(evc.evaluator.like("hallucination%"),),
        ),
        Metric(
            "negative_feedback",
            fb,
            fb.c.normalized < 0.5,
            event,
            "feedback",
            "thumbs down and low ratings",
        ),
        Metric(
            "feedback_score",
            fb,
            cast(fb.c.normalized, Float),
            num,
            "score",
            "feedback normalised to 0 (bad) … 1 (good)",
        ),
        Metric("cost_usd", cost, cost.c.cost_usd, num, "USD", "cost of each request"),
    ]
    return {m.name: m for m in metrics}


METRICS: dict[str, Metric] = _build()


def event_as_number(value: ColumnElement[Any]) -> ColumnElement[float]:
    """1.0 where an event is true, 0.0 where false, NULL where unknown."""
    return case((value.is_(True), 1.0), (value.is_(False), 0.0))
