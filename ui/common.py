"""What every page shares: the database, the sidebar's window and filters, cached queries, charts.

The app reads its settings once (``INFERWATCH_*``; ``inferwatch ui`` passes the
database URL) and holds one SQLAlchemy engine whose sessions are read-only
with a statement timeout. Query results are cached for ``CACHE_TTL_S`` keyed by
their parameters, with "now" rounded to ``NOW_ROUNDING_S``, so reruns and other
viewers within a few seconds reuse them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from sqlalchemy import Engine, create_engine

from inferwatch.settings import Settings
from inferwatch.store.database import sqlalchemy_url
from ui import data
from ui.window import RANGES, Window

CACHE_TTL_S = 30
NOW_ROUNDING_S = 5
STATEMENT_TIMEOUT_MS = 30_000
REFRESH_CHOICES = {"off": None, "10 s": 10, "30 s": 30, "1 min": 60, "5 min": 300}
SEND_ONE = (
    "curl http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' "
    '-d \'{"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Hi"}]}\''
)


@st.cache_resource
def settings() -> Settings:
    return Settings()


@st.cache_resource
def engine() -> Engine:
    url = settings().database_url
    assert url is not None, "ui/app.py stops before any query without a database"
    options = f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True, connect_args={"options": options})


@dataclass(frozen=True)
class Filters:
    """The sidebar's choices: a range ending now (or a custom window) and models."""

    length: timedelta | None
    custom: tuple[datetime, datetime] | None
    models: tuple[str, ...]

    def window(self) -> Window:
        if self.custom is not None:
            return Window(*self.custom, models=self.models)
        now = int(time.time()) // NOW_ROUNDING_S * NOW_ROUNDING_S + NOW_ROUNDING_S
        assert self.length is not None
        return Window.last(self.length, datetime.fromtimestamp(now, UTC), self.models)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _query(name: str, window: Window | None, kwargs: tuple[tuple[str, Any], ...]) -> Any:
    function: Callable[..., Any] = getattr(data, name)
    with engine().connect() as conn:
        return function(conn, *([] if window is None else [window]), **dict(kwargs))


def query(name: str, window: Window | None = None, **kwargs: Any) -> Any:
    """``ui.data.<name>(conn, window, **kwargs)``, cached."""
    return _query(name, window, tuple(sorted(kwargs.items())))


def sidebar() -> tuple[Filters, int | None]:
    """Renders the global filters; the filters and the auto-refresh period (s)."""
    st.sidebar.title("InferWatch")
    choice = st.sidebar.selectbox("Time range", [*RANGES, "Custom"], index=1, key="range")
    custom = None
    if choice == "Custom":
        today = datetime.now(UTC).date()
        picked = st.sidebar.date_input(
            "From - to (UTC days)", (today - timedelta(days=1), today), key="custom_days"
        )
        if isinstance(picked, tuple) and len(picked) == 2:
            start = datetime.combine(picked[0], datetime.min.time(), UTC)
            end = datetime.combine(picked[1], datetime.min.time(), UTC) + timedelta(days=1)
            custom = (start, end)
    known = query("models")
    chosen = st.sidebar.multiselect("Models", known, key="models", placeholder="All models")
    refresh = st.sidebar.selectbox("Auto-refresh", list(REFRESH_CHOICES), index=2, key="refresh")
    length = None if custom else RANGES.get(choice, timedelta(hours=1))
    if choice == "Custom" and custom is None:
        length = timedelta(days=1)
    refreshed = query("rollups_refreshed")
    st.sidebar.caption(
        "Charts read per-minute rollups, "
        + ("not built yet." if refreshed is None else f"updated {_ago(refreshed)}.")
    )
    return Filters(length, custom, tuple(chosen)), REFRESH_CHOICES[refresh]


def _ago(at: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - at).total_seconds()))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def no_requests_yet() -> None:
    st.info(
        "No requests in this time range yet. Send one through the gateway, e.g.\n\n"
        f"`{SEND_ONE}`\n\nor run `inferwatch demo` for a minute of realistic traffic."
    )


# Formatting ---------------------------------------------------------------------------


def fmt_ms(ms: float | None) -> str:
    if ms is None or pd.isna(ms):
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 10_000 else f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def fmt_usd(usd: float | None) -> str:
    if usd is None or pd.isna(usd):
        return "-"
    return f"${usd:,.2f}" if usd >= 1 else f"${usd:.4f}"


def fmt_pct(ratio: float | None) -> str:
    return "-" if ratio is None or pd.isna(ratio) else f"{100 * ratio:.1f} %"


def fmt_rate(per_s: float | None, noun: str) -> str:
    """A rate per second; per minute when under 0.1/s (a quiet hour is not "0.00/s")."""
    if per_s is None or pd.isna(per_s):
        return "-"
    return (
        f"{per_s:,.2f} {noun}/s" if per_s >= 0.1 or per_s == 0 else f"{per_s * 60:.2f} {noun}/min"
    )


def change(now: float | None, before: float | None) -> str | None:
    """The change against the previous period, as st.metric's delta."""
    if now is None or before is None or pd.isna(now) or pd.isna(before) or before == 0:
        return None
    return f"{100 * (now - before) / abs(before):+.0f} % vs previous"


# Charts -------------------------------------------------------------------------------


def time_chart(
    df: pd.DataFrame,
    y: str,
    title: str,
    unit: str,
    *,
    color: str | None = None,
    mark: str = "line",
    height: int = 220,
) -> alt.Chart:
    """A time series with its unit on the y axis (``color`` splits it into series)."""
    base = alt.Chart(df, title=title, height=height)
    chart = base.mark_area(opacity=0.8) if mark == "area" else base.mark_line(point=len(df) < 30)
    encodings: dict[str, Any] = {
        "x": alt.X("time:T", title="time (UTC)"),
        "y": alt.Y(f"{y}:Q", title=unit, stack=mark == "area" or None),
        "tooltip": [alt.Tooltip("time:T", format="%Y-%m-%d %H:%M"), alt.Tooltip(f"{y}:Q")],
    }
    if color is not None:
        encodings["color"] = alt.Color(f"{color}:N", title=None)
        encodings["tooltip"].append(alt.Tooltip(f"{color}:N"))
    encoded: alt.Chart = chart.encode(**encodings)
    return encoded


def show(chart: alt.Chart) -> None:
    st.altair_chart(chart, width="stretch")
