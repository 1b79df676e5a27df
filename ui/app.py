"""The InferWatch dashboard (``inferwatch ui``): seven pages over one time range and model filter.

Run it with ``inferwatch ui`` (or ``inferwatch up``), which hands it the
database; ``streamlit run ui/app.py`` works with INFERWATCH_DATABASE_URL set.
"""

from __future__ import annotations

import streamlit as st

from ui.common import settings
from ui.panels import PAGES, refreshing, with_sidebar

st.set_page_config(page_title="InferWatch", page_icon=":material/monitoring:", layout="wide")
if settings().database_url is None:
    st.error(
        "No database to read: start the dashboard with `inferwatch ui` (or `inferwatch up`), "
        "or set INFERWATCH_DATABASE_URL."
    )
    st.stop()
navigation = st.navigation(
    [
        st.Page(refreshing(p), title=p.TITLE, icon=p.ICON, url_path=p.PATH, default=i == 0)
        for i, p in enumerate(PAGES)
    ]
)
with_sidebar()
navigation.run()
