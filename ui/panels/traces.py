"""Traces: search and filter requests; one request's spans, text, scores, feedback and GPU context.

A trace opens from the table (select a row) or from the URL (``?trace=<id>``),
which is how notifications and colleagues link to one.
"""

from __future__ import annotations

import json
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from ui.common import fmt_ms, fmt_usd, no_requests_yet, query, show
from ui.window import Window

TITLE = "Traces"
ICON = ":material/search:"
PATH = "traces"
STATUSES = {"any": None, "ok": "ok", "error": "error"}


def render(w: Window) -> None:
    st.title("Traces")
    row = st.columns([3, 1, 1, 1])
    search = row[0].text_input("Search prompt and completion, or a trace id", key="search")
    status = row[1].selectbox("Status", list(STATUSES), key="status")
    slower = row[2].number_input("Slower than (ms)", min_value=0, value=0, step=100, key="min_e2e")
    flagged = row[3].toggle("Flagged only", key="flagged")
    found = query(
        "traces",
        w,
        status=STATUSES[status or "any"],
        min_e2e_ms=float(slower) if slower else None,
        search=search.strip() or None,
        flagged_only=flagged,
    )
    if found.empty:
        if search or slower or flagged or status != "any":
            st.info("No request matches these filters in this time range.")
        else:
            no_requests_yet()
    else:
        st.caption(f"The newest {len(found)} matching requests; select one for its details.")
        picked = st.dataframe(
            found,
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            key="trace_table",
            column_config={
                "ttft_ms": st.column_config.NumberColumn("TTFT (ms)", format="%.0f"),
                "tpot_ms": st.column_config.NumberColumn("TPOT (ms)", format="%.1f"),
                "e2e_ms": st.column_config.NumberColumn("e2e (ms)", format="%.0f"),
                "worst_score": st.column_config.NumberColumn("worst score", format="%.2f"),
            },
        )
        rows = picked.selection.rows if picked is not None else []
        if rows:
            st.query_params["trace"] = found["trace_id"].iloc[rows[0]]
    trace_id = st.query_params.get("trace")
    if trace_id:
        st.divider()
        detail(str(trace_id))


def detail(trace_id: str) -> None:
    st.subheader(f"Trace {trace_id}")
    st.code(trace_id, language="text")  # with a copy button
    request = query("trace_request", trace_id=trace_id)
    spans = query("trace_spans", trace_id=trace_id)
    if spans.empty:
        st.warning(f"No spans stored for trace {trace_id}.")
        return
    r = None if request.empty else request.iloc[0]
    if r is not None:
        st.caption(f"{r['model']}, started {r['started_at']:%Y-%m-%d %H:%M:%S} UTC")
        first, second = st.columns(3), st.columns(3)
        first[0].metric("Status", str(r["status"]), border=True)
        first[1].metric("TTFT", fmt_ms(r["ttft_ms"]), border=True)
        first[2].metric("End-to-end", fmt_ms(r["e2e_ms"]), border=True)
        second[0].metric(
            "Tokens in / out",
            f"{_int(r['input_tokens'])} / {_int(r['output_tokens'])}",
            border=True,
        )
        second[1].metric("TPOT", fmt_ms(r["tpot_ms"]), border=True)
        second[2].metric("Cost", fmt_usd(r["cost_usd"]), border=True)
        if r["error"]:
            st.error(f"Error: {r['error']}")
    waterfall(spans)
    if r is not None:
        left, right = st.columns(2)
        with left:
            st.markdown("**Prompt** (as captured, after redaction)")
            st.text(_messages(r["prompt"]) or "(not captured: see the gateway's capture policy)")
        with right:
            st.markdown("**Completion**")
            st.text(_messages(r["completion"]) or "(not captured)")
    logprobs = spans.dropna(subset=["logprob_mean"])
    if not logprobs.empty:
        s = logprobs.iloc[0]
        st.markdown(
            f"**Token confidence**: mean log-prob {float(s['logprob_mean']):.2f}, "
            f"lowest {float(s['logprob_min']):.2f}, "
            f"{100 * float(s['low_confidence_share']):.0f} % of {s['logprob_tokens']} tokens "
            "below 10 % probability"
        )
    evaluations = query("trace_evaluations", trace_id=trace_id)
    st.markdown("**Evaluations**")
    if evaluations.empty:
        st.caption("Not scored (not sampled, or the evaluator worker has not reached it yet).")
    else:
        st.dataframe(evaluations.drop(columns=["evidence"]), hide_index=True)
        for _, e in evaluations.iterrows():
            if e["evidence"]:
                with st.expander(f"Evidence from {e['evaluator']}"):
                    st.json(e["evidence"])
    feedback = query("trace_feedback", trace_id=trace_id)
    st.markdown("**Feedback**")
    if feedback.empty:
        st.caption("No feedback on this answer.")
    else:
        st.dataframe(feedback, hide_index=True)
    if r is not None and pd.notna(r["engine_requests_running"]):
        st.markdown(
            f"**Engine when it started**: {r['engine_requests_running']:.0f} running, "
            f"{r['engine_requests_waiting']:.0f} waiting, KV cache "
            f"{100 * r['engine_kv_cache_usage']:.0f} % used"
        )
    if r is not None and pd.notna(r["gpu_utilization_mean"]):
        st.markdown(
            f"**GPU during the request**: {r['gpu_utilization_mean']:.0f} % busy on average, "
            f"{r['gpu_utilization_max']:.0f} % at most"
        )


def waterfall(spans: pd.DataFrame) -> None:
    bars = spans.assign(
        label=spans["service_name"].fillna("?") + ": " + spans["name"],
        end_ms=spans[["end_ms", "start_ms"]].max(axis=1),
    )
    phases = []
    for _, s in spans.dropna(subset=["queue_ms"]).iterrows():
        at = float(s["start_ms"])
        for phase in ("queue_ms", "prefill_ms", "decode_ms"):
            if pd.notna(s[phase]):
                phases.append(
                    {
                        "label": f"vLLM {phase[:-3]}",
                        "start_ms": at,
                        "end_ms": at + float(s[phase]),
                        "service_name": "vllm phase",
                    }
                )
                at += float(s[phase])
    rows = pd.concat(
        [bars[["label", "start_ms", "end_ms", "service_name"]], pd.DataFrame(phases)],
        ignore_index=True,
    )
    order = list(rows["label"])
    chart = alt.Chart(rows, title="Span waterfall", height=40 + 34 * len(rows)).mark_bar()
    show(
        chart.encode(
            x=alt.X("start_ms:Q", title="milliseconds since the trace started"),
            x2="end_ms:Q",
            y=alt.Y(
                "label:N", sort=order, title=None, axis=alt.Axis(labelLimit=400, labelOverlap=False)
            ),
            color=alt.Color("service_name:N", title=None),
            tooltip=["label:N", "start_ms:Q", "end_ms:Q"],
        )
    )


def _int(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{int(value):,}"


def _messages(raw: Any) -> str:
    """GenAI semconv message lists as "role: text" lines; other text as it is."""
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return ""
    try:
        messages = json.loads(raw)
    except (TypeError, ValueError):
        return str(raw)
    if not isinstance(messages, list):
        return str(raw)
    lines = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        parts = m.get("parts") or []
        content = " ".join(str(p.get("content", "")) for p in parts if isinstance(p, dict))
        lines.append(f"{m.get('role', '?')}: {content or m.get('content', '')}")
    return "\n\n".join(lines)
