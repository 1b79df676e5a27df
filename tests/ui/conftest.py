"""A seeded database for the dashboard's tests (one per module: seeding takes a few seconds),
an empty one, and Streamlit's caches cleared around every test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import streamlit as st

from inferwatch.store.database import Database
from tests.conftest import TEMPLATE_DB, create_database, drop_database
from tests.ui.seeding import seed_dashboard


@dataclass(frozen=True)
class Seeded:
    url: str
    known_trace: str


@pytest.fixture(scope="module")
def seeded(pg_admin_url: str, template_url: str) -> Iterator[Seeded]:
    url = create_database(pg_admin_url, template=TEMPLATE_DB)
    db = Database(url)
    try:
        known = seed_dashboard(db)
    finally:
        db.close()
    yield Seeded(url, known)
    drop_database(pg_admin_url, url)


@pytest.fixture(autouse=True)
def fresh_streamlit_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
