"""docs/sql.md stays true: every example runs (read-only, as `inferwatch sql` runs it) and
returns rows on the seeded database, and every column of every public view is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from inferwatch.sqlquery import run_readonly
from inferwatch.store.database import Database, libpq_url
from tests.ui.conftest import Seeded

DOC = Path(__file__).parents[2] / "docs" / "sql.md"
EXAMPLES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
PUBLIC = [
    "llm_requests", "spans", "llm_request_gpu", "gpu_samples", "engine_rates",
    "llm_request_evaluations", "llm_request_feedback", "feedback", "llm_request_costs",
    "cost_hourly", "alerts_active", "alert_history", "rollup_requests", "rollup_latency",
    "rollup_evaluations", "rollup_gpu", "rollup_engine",
]  # fmt: skip


def test_there_are_ten_or_more_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("query", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_every_example_runs_and_finds_rows(seeded: Seeded, query: str) -> None:
    url = libpq_url(make_url(seeded.url).render_as_string(hide_password=False))
    result = run_readonly(url, query.strip().rstrip(";"))
    assert result.rows, query


def test_every_column_of_every_public_view_is_documented(seeded: Seeded) -> None:
    documented = DOC.read_text()
    db = Database(seeded.url)
    try:
        with db.engine.connect() as conn:
            for name in PUBLIC:
                columns = conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = :t ORDER BY ordinal_position"
                    ),
                    {"t": name},
                ).scalars()
                found = list(columns)
                assert found, f"{name} is not in the database"
                missing = [c for c in found if not re.search(rf"\b{c}\b", documented)]
                assert not missing, f"{name}: undocumented columns {missing}"
    finally:
        db.close()
