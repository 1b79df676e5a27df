"""Cost: dollars per hour, per 1K tokens and per request, by model; token volumes."""

from __future__ import annotations

import streamlit as st

from ui.common import fmt_usd, no_requests_yet, query, show, time_chart
from ui.window import Window

TITLE = "Cost"
ICON = ":material/payments:"
PATH = "cost"


def render(w: Window) -> None:
    st.title("Cost")
    cost = query("cost_series", w)
    if cost.empty:
        no_requests_yet()
        return
    hours = w.length.total_seconds() / 3600
    total = float(cost["cost_usd"].sum())
    tokens = float(cost["input_tokens"].sum() + cost["output_tokens"].sum())
    requests = float(cost["requests"].sum())
    row = st.columns(4)
    row[0].metric("Cost in range", fmt_usd(total), border=True)
    row[1].metric("Per hour", fmt_usd(total / hours), border=True)
    row[2].metric("Per 1K tokens", fmt_usd(total * 1000 / tokens if tokens else None), border=True)
    row[3].metric("Per request", fmt_usd(total / requests if requests else None), border=True)
    if total == 0:
        st.info(
            "No prices apply yet: set token prices per model or $/hour per GPU in a prices "
            "file (`INFERWATCH_COLLECTOR__PRICES_FILE`, the shape of collector/prices.yaml)."
        )

    step_hours = w.step.total_seconds() / 3600
    per_step = cost.copy()
    per_step["usd_per_hour"] = per_step["cost_usd"] / step_hours
    show(
        time_chart(
            per_step,
            "usd_per_hour",
            "Cost rate by model",
            "US$ per hour",
            color="model",
            mark="area",
        )
    )

    by_model = cost.groupby("model", as_index=False)[
        ["requests", "input_tokens", "output_tokens", "token_cost_usd", "gpu_cost_usd", "cost_usd"]
    ].sum()
    all_tokens = by_model["input_tokens"] + by_model["output_tokens"]
    by_model["usd_per_1k_tokens"] = by_model["cost_usd"] * 1000 / all_tokens.where(all_tokens > 0)
    by_model["usd_per_request"] = by_model["cost_usd"] / by_model["requests"].where(
        by_model["requests"] > 0
    )
    st.subheader("By model")
    st.dataframe(
        by_model,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="$%.4f")
            for c in (
                "token_cost_usd",
                "gpu_cost_usd",
                "cost_usd",
                "usd_per_1k_tokens",
                "usd_per_request",
            )
        },
    )
    st.subheader("Token volumes")
    volumes = cost.melt(
        id_vars=["time"],
        value_vars=["input_tokens", "output_tokens"],
        var_name="kind",
        value_name="tokens",
    )
    volumes = volumes.groupby(["time", "kind"], as_index=False)["tokens"].sum()
    show(
        time_chart(volumes, "tokens", f"Tokens per {_step(w)}", "tokens", color="kind", mark="area")
    )


def _step(w: Window) -> str:
    minutes = int(w.step.total_seconds() // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
