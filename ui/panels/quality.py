"""Quality: evaluator verdicts over time and by model, the worst answers, and user feedback."""

from __future__ import annotations

import streamlit as st

from ui.common import query, show, time_chart
from ui.window import Window

TITLE = "Quality"
ICON = ":material/verified:"
PATH = "quality"


def render(w: Window) -> None:
    st.title("Quality")
    series = query("evaluation_series", w)
    if series.empty:
        st.info(
            "No evaluations in this range. The evaluator worker (`inferwatch evaluate`, "
            "started by `inferwatch up`) scores sampled answers for toxicity and "
            "unsupported claims; see docs/evaluators.md."
        )
    else:
        flagged = series.assign(flagged_pct=100 * series["flagged_rate"])
        show(
            time_chart(
                flagged,
                "flagged_pct",
                "Share of scored answers flagged",
                "% flagged",
                color="evaluator",
            )
        )
        show(
            time_chart(
                series,
                "mean_score",
                "Mean risk score (0 = fine, 1 = certain problem)",
                "score",
                color="evaluator",
            )
        )
        st.subheader("By model")
        st.dataframe(
            query("evaluations_by_model", w),
            hide_index=True,
            column_config={
                "flagged_rate": st.column_config.ProgressColumn(
                    format="percent", min_value=0, max_value=1
                ),
            },
        )
        st.subheader("Worst-scored answers")
        st.dataframe(query("worst_scored", w), hide_index=True)

    st.subheader("Feedback")
    summary = query("feedback_summary", w)
    row = st.columns(3)
    row[0].metric("Thumbs up", f"{summary['thumbs_up']:.0f}", border=True)
    row[1].metric("Thumbs down", f"{summary['thumbs_down']:.0f}", border=True)
    ratio = summary["up_ratio"]
    row[2].metric("Up share", "-" if ratio is None else f"{100 * ratio:.0f} %", border=True)
    comments = query("feedback_comments", w)
    if comments.empty:
        st.caption(
            "No feedback comments in this range. Users' feedback arrives at the "
            "collector's POST /v1/feedback with the x-inferwatch-trace-id of the answer."
        )
    else:
        st.dataframe(comments, hide_index=True)
    agreement = query("feedback_agreement", w)
    if not agreement.empty:
        st.subheader("Feedback against evaluator verdicts")
        st.caption(
            "For answers with both: how often each evaluator flagged the answers users "
            "liked and disliked."
        )
        st.dataframe(agreement, hide_index=True)
