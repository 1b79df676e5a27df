"""Overview: the figures an on-call engineer checks first, each against the previous period."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.common import (
    change,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_usd,
    no_requests_yet,
    query,
)
from ui.window import Window

TITLE = "Overview"
ICON = ":material/dashboard:"
PATH = "overview"


def _p(df: pd.DataFrame, metric: str, q: float) -> float | None:
    hit = df[(df["metric"] == metric) & (df["q"] == q)]
    return None if hit.empty else float(hit["value_ms"].iloc[0])


def _spark(series: pd.DataFrame, column: str) -> list[float]:
    if series.empty or column not in series:
        return []
    return [0.0 if pd.isna(v) else float(v) for v in series[column]]


def _tile(
    column: Any,
    label: str,
    value: str,
    delta: str | None,
    spark: list[float],
    *,
    inverse: bool = False,
    help: str | None = None,
) -> None:
    column.metric(
        label,
        value,
        delta,
        delta_color="inverse" if inverse else "normal",
        chart_data=spark or None,
        border=True,
        help=help,
    )


def render(w: Window) -> None:
    st.title("Overview")
    now, before = query("totals", w), query("totals", w.previous())
    if not now["requests"]:
        no_requests_yet()
    series = query("request_series", w)
    pct, pct_before = query("percentiles", w), query("percentiles", w.previous())
    pct_series = query("percentiles", w, by_step=True)
    cost = query("cost_series", w)
    cost_before = query("cost_series", w.previous())
    hours = w.length.total_seconds() / 3600
    cost_per_hour = float(cost["cost_usd"].sum()) / hours if not cost.empty else 0.0
    cost_per_hour_before = (
        float(cost_before["cost_usd"].sum()) / hours if not cost_before.empty else None
    )

    top = st.columns(4)
    _tile(
        top[0],
        "Request rate",
        fmt_rate(now["requests_per_s"], "req"),
        change(now["requests_per_s"], before["requests_per_s"]),
        _spark(series, "requests_per_s"),
    )
    _tile(
        top[1],
        "Output token rate",
        fmt_rate(now["output_tokens_per_s"], "tok"),
        change(now["output_tokens_per_s"], before["output_tokens_per_s"]),
        _spark(series, "output_tokens_per_s"),
    )
    _tile(
        top[2],
        "Error rate",
        fmt_pct(now["error_rate"]),
        change(now["error_rate"], before["error_rate"]),
        _spark(series, "error_rate"),
        inverse=True,
    )
    _tile(
        top[3],
        "Cost / hour",
        fmt_usd(cost_per_hour),
        change(cost_per_hour, cost_per_hour_before),
        _spark(cost.groupby("time")["cost_usd"].sum().reset_index(), "cost_usd")
        if not cost.empty
        else [],
        inverse=True,
        help="Token-priced cost plus GPU-hours where a GPU price is known.",
    )

    for metric, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e", "End-to-end")):
        tiles = st.columns(3)
        for column, q in zip(tiles, (0.5, 0.95, 0.99), strict=True):
            points = pct_series[(pct_series["metric"] == metric) & (pct_series["q"] == q)]
            _tile(
                column,
                f"{label} p{round(q * 100)}",
                fmt_ms(_p(pct, metric, q)),
                change(_p(pct, metric, q), _p(pct_before, metric, q)),
                _spark(points, "value_ms"),
                inverse=True,
            )

    quality = query("evaluation_series", w)
    quality_before = query("evaluation_series", w.previous())
    feedback, feedback_before = (
        query("feedback_summary", w),
        query("feedback_summary", w.previous()),
    )
    alerts = query("active_alerts")
    evaluators = sorted(quality["evaluator"].unique()) if not quality.empty else []
    bottom = st.columns(max(2, len(evaluators) + 2))
    for column, evaluator in zip(bottom, evaluators, strict=False):
        mine = quality[quality["evaluator"] == evaluator]
        theirs = quality_before[quality_before["evaluator"] == evaluator]
        rate = mine["flagged"].sum() / max(1, mine["scored"].sum())
        rate_before = theirs["flagged"].sum() / theirs["scored"].sum() if not theirs.empty else None
        _tile(
            column,
            f"Flagged: {evaluator.removeprefix('hallucination-')}",
            fmt_pct(rate),
            change(rate, rate_before),
            _spark(mine, "flagged_rate"),
            inverse=True,
            help=f"Share of scored requests that {evaluator} flagged.",
        )
    _tile(
        bottom[len(evaluators)],
        "Thumbs up",
        fmt_pct(feedback["up_ratio"]),
        change(feedback["up_ratio"], feedback_before["up_ratio"]),
        _spark(query("feedback_series", w), "thumbs_up"),
        help=f"{feedback['thumbs_up']:.0f} up, {feedback['thumbs_down']:.0f} down",
    )
    firing = alerts[alerts["state"] == "firing"] if not alerts.empty else alerts
    bottom[len(evaluators) + 1].metric("Firing alerts", len(firing), border=True)
    if not evaluators:
        st.caption("No evaluations in this range: `inferwatch evaluate` scores sampled answers.")
    if not firing.empty:
        st.subheader("Firing alerts")
        st.dataframe(firing[["severity", "rule", "summary", "value", "fired_at"]], hide_index=True)
