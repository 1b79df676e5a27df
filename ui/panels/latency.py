"""Latency: percentiles over time, where the time goes (vLLM's phases), and the distribution."""

from __future__ import annotations

import altair as alt
import streamlit as st

from ui.common import no_requests_yet, query, show, time_chart
from ui.window import Window

TITLE = "Latency"
ICON = ":material/timer:"
PATH = "latency"
METRICS = {
    "TTFT (time to first token)": "ttft",
    "TPOT (time per output token)": "tpot",
    "End-to-end": "e2e",
    "Queue time": "queue",
}


def render(w: Window) -> None:
    st.title("Latency")
    label = st.segmented_control("Metric", list(METRICS), default=next(iter(METRICS)), key="metric")
    metric = METRICS[label or next(iter(METRICS))]
    series = query("percentiles", w, by_step=True)
    mine = series[series["metric"] == metric].copy()
    if mine.empty:
        no_requests_yet()
        return
    mine["percentile"] = "p" + (mine["q"] * 100).round().astype(int).astype(str)
    show(
        time_chart(mine, "value_ms", f"{label}: p50, p95, p99", "milliseconds", color="percentile")
    )

    st.subheader("Where the time goes")
    phases = query("request_series", w)
    parts = phases.melt(
        id_vars=["time"],
        value_vars=["queue_mean_ms", "prefill_mean_ms", "decode_mean_ms"],
        var_name="phase",
        value_name="ms",
    ).dropna()
    if parts.empty:
        st.info(
            "No engine timings: vLLM's own spans (`llm_request`) carry queue, prefill and "
            "decode time; start vLLM with `--otlp-traces-endpoint` pointing at the collector."
        )
    else:
        parts["phase"] = parts["phase"].str.replace("_mean_ms", "")
        show(
            time_chart(
                parts,
                "ms",
                "Mean time per request in vLLM, by phase",
                "milliseconds",
                color="phase",
                mark="area",
            )
        )

    st.subheader("Distribution")
    hist = query("histogram", w, metric=metric)
    chart = alt.Chart(hist, title=f"{label}: requests per latency bin", height=220).mark_bar()
    show(
        chart.encode(
            x=alt.X("lower_ms:Q", title="milliseconds (log scale)", scale=alt.Scale(type="log")),
            x2="upper_ms:Q",
            y=alt.Y("requests:Q", title="requests"),
            tooltip=["lower_ms:Q", "upper_ms:Q", "requests:Q"],
        )
    )
