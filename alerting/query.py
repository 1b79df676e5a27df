"""A rule's condition as one parameterised SQL query over the catalog's views.

``condition_query`` is the only place rule text meets SQL, and only through
SQLAlchemy Core: metric and label names are looked up in the catalog, filter
values are bound parameters. The query returns one row per label set:
the labels, the aggregated value and the number of rows it summarises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Select, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from alerting.catalog import (
    METRICS,
    PERCENTILES,
    ZERO_WHEN_EMPTY,
    Aggregation,
    Kind,
    Metric,
    event_as_number,
)
from alerting.rules import Condition

LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    labels: LabelSet
    value: float | None
    rows: int


def _aggregate(metric: Metric, aggregation: Aggregation, window_s: float) -> ColumnElement[Any]:
    value = metric.value
    if metric.kind is Kind.EVENT:
        if aggregation is Aggregation.RATIO:
            return func.avg(event_as_number(value))
        true_rows = func.count().filter(value.is_(True))
        if aggregation is Aggregation.COUNT:
            return cast(true_rows, Float)
        return cast(true_rows, Float) / window_s  # rate
    if aggregation in PERCENTILES:
        return func.percentile_cont(PERCENTILES[aggregation]).within_group(value)
    if aggregation is Aggregation.COUNT:
        return cast(func.count(value), Float)
    if aggregation is Aggregation.RATE:
        return cast(func.count(value), Float) / window_s
    functions: dict[Aggregation, Any] = {
        Aggregation.AVG: func.avg,
        Aggregation.MIN: func.min,
        Aggregation.MAX: func.max,
        Aggregation.SUM: func.sum,
    }
    result: ColumnElement[Any] = functions[aggregation](value)
    return result


def condition_query(cond: Condition, group_by: list[str], now: datetime) -> Select[Any]:
    """Rows of (labels..., value, rows) over the window ending at ``now``."""
    metric = METRICS[cond.metric]
    labels = metric.source.labels
    window_s = cond.window.total_seconds()
    counted = metric.value if metric.kind is Kind.NUMBER else literal(True)
    query: Select[Any] = (
        select(
            *(labels[name].label(name) for name in group_by),
            cast(_aggregate(metric, cond.aggregation, window_s), Float).label("value"),
            func.count(counted).label("rows"),
        )
        .select_from(metric.source.rows)
        .where(metric.source.time > now - cond.window, metric.source.time <= now, *metric.where)
        .group_by(*(labels[name] for name in group_by))
    )
    for name, wanted in cond.filters.items():
        column = labels[name]
        query = query.where(column.in_(wanted) if isinstance(wanted, list) else column == wanted)
    return query


async def measure(
    conn: AsyncConnection, cond: Condition, group_by: list[str], now: datetime
) -> list[Sample]:
    """The condition's value per label set; an empty list is "no data".

    ``count``, ``rate`` and ``sum`` with no rows at all are 0 (nothing happened)
    when there is nothing to group by. Label sets with fewer than
    ``min_samples`` rows are left out (no data)."""
    result = await conn.execute(condition_query(cond, group_by, now))
    samples = []
    for row in result:
        mapping = row._mapping
        labels = tuple(
            (name, "" if mapping[name] is None else str(mapping[name])) for name in group_by
        )
        if mapping["rows"] < max(cond.min_samples, 1) and not cond.zero_when_empty:
            continue
        value = mapping["value"]
        if value is None and cond.aggregation in ZERO_WHEN_EMPTY:
            value = 0.0
        samples.append(
            Sample(labels, None if value is None else float(value), int(mapping["rows"]))
        )
    return samples
