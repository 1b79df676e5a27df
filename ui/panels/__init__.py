"""The dashboard's pages. Each module has TITLE, ICON, PATH and ``render(window)``."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import streamlit as st

from ui.common import Filters, sidebar
from ui.panels import alerts, cost, gpu, latency, overview, quality, traces

PAGES: list[ModuleType] = [overview, latency, cost, quality, gpu, traces, alerts]


def refreshing(page: ModuleType) -> Callable[[], None]:
    """The page as st.navigation runs it: re-rendered every auto-refresh period, with the
    window recomputed each time (so "last hour" keeps ending now)."""

    def run() -> None:
        filters: Filters = st.session_state["filters"]

        @st.fragment(run_every=st.session_state.get("refresh_s"))
        def body() -> None:
            page.render(filters.window())

        body()

    run.__name__ = f"page_{page.PATH}"
    return run


def with_sidebar() -> None:
    """Renders the sidebar and keeps its choices where ``refreshing`` pages read them."""
    st.session_state["filters"], st.session_state["refresh_s"] = sidebar()


def run_page(path: str) -> None:
    """One page with the sidebar, as ui/app.py runs it (for AppTest, which cannot switch
    between callable pages, and the dashboard benchmark)."""
    with_sidebar()
    refreshing(next(p for p in PAGES if path == p.PATH))()
