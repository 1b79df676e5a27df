"""Alerts: what is pending and firing, what changed in the range, every rule's value, silences.

Rules come from the same files the alert engine loads; their current values
from the engine's /metrics (``inferwatch_alert_rule_value``), over HTTP.
"""

from __future__ import annotations

import httpx
import pandas as pd
import streamlit as st
from prometheus_client.parser import text_string_to_metric_families

from alerting.rules import ConfigError, load_config
from ui.common import CACHE_TTL_S, query, settings
from ui.window import Window

TITLE = "Alerts"
ICON = ":material/notifications_active:"
PATH = "alerts"
METRICS_TIMEOUT_S = 2.0


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def rules() -> pd.DataFrame:
    cfg = settings().alerting
    try:
        config = load_config(cfg.files, defaults=cfg.default_rules)
    except ConfigError as exc:
        return pd.DataFrame({"problem": [str(exc)]})
    return pd.DataFrame(
        [
            {
                "rule": r.name,
                "severity": r.severity,
                "metric": r.metric,
                "condition": f"{r.aggregation} {r.comparison} {r.threshold:g} over {r.window}",
                "for": r.for_,
                "enabled": r.enabled,
            }
            for r in config.rules
        ]
    )


@st.cache_data(ttl=10, show_spinner=False)
def rule_values() -> pd.DataFrame | None:
    """Each rule's last value per label set from the alert engine, or None if it is not up."""
    cfg = settings().alerting
    try:
        answer = httpx.get(f"http://{cfg.host}:{cfg.port}/metrics", timeout=METRICS_TIMEOUT_S)
        answer.raise_for_status()
    except httpx.HTTPError:
        return None
    rows = []
    for family in text_string_to_metric_families(answer.text):
        if family.name != "inferwatch_alert_rule_value":
            continue
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "alertname"}
            rows.append(
                {
                    "rule": sample.labels["alertname"],
                    "value": sample.value,
                    "labels": ", ".join(f"{k}={v}" for k, v in labels.items()),
                }
            )
    return pd.DataFrame(rows, columns=["rule", "value", "labels"])


def render(w: Window) -> None:
    st.title("Alerts")
    active = query("active_alerts")
    if active.empty:
        st.success("No alert is pending or firing.")
    else:
        st.subheader("Pending and firing")
        st.dataframe(active, hide_index=True)
    st.subheader("Changes in this range")
    history = query("alert_history", w)
    if history.empty:
        st.caption("No alert changed state in this range.")
    else:
        st.dataframe(history, hide_index=True)

    st.subheader("Rules")
    table = rules()
    values = rule_values()
    if values is None:
        cfg = settings().alerting
        st.caption(
            f"Current values unavailable: the alert engine is not answering at "
            f"http://{cfg.host}:{cfg.port} (`inferwatch alerts` runs it)."
        )
    elif "rule" in table:
        current = (
            values.groupby("rule")
            .agg(value=("value", "max"), series=("labels", "count"))
            .reset_index()
        )
        table = table.merge(current, on="rule", how="left")
    st.dataframe(table, hide_index=True)

    st.subheader("Silences")
    silenced = query("silences")
    if silenced.empty:
        st.caption(
            "No silences in the last 7 days. Add one with "
            "`inferwatch alerts silence add alertname=<rule> --duration 2h`."
        )
    else:
        st.dataframe(silenced, hide_index=True)
