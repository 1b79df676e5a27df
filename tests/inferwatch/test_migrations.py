"""Alembic owns the schema: upgrade from empty, downgrade a step, models match revisions."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from inferwatch.store import migrate
from inferwatch.store.database import Database
from inferwatch.store.models import Base

# What each revision adds, newest first (each downgrade step removes the first entry).
REVISIONS: list[tuple[str, set[str], set[str]]] = [
    (
        "0006",
        {
            "rollup_requests",
            "rollup_latency",
            "rollup_evaluations",
            "rollup_gpu",
            "rollup_engine",
            "rollup_cursors",
        },
        {"alerts_active", "alert_history"},
    ),
    ("0005", {"evaluation_jobs", "evaluation_cursors"}, set()),
    (
        "0004",
        {"alert_states", "alert_events", "alert_groups", "alert_deliveries", "alert_silences"},
        set(),
    ),
    ("0003", {"evaluations"}, {"llm_request_evaluations"}),
    (
        "0002",
        {"engines", "engine_samples", "gpu_samples", "gpu_processes", "feedback"},
        {"engine_rates", "llm_request_gpu", "llm_request_feedback", "llm_request_costs"},
    ),
    ("0001", {"spans"}, {"llm_requests"}),
]


def test_upgrade_from_empty_then_downgrade_step_by_step_then_upgrade_again(
    empty_db_url: str,
) -> None:
    db = Database(empty_db_url)
    try:
        with db.engine.connect() as conn:
            assert migrate.current_revision(conn) is None
        migrate.upgrade(db.engine)
        assert migrate.head_revision() == REVISIONS[0][0]
        insp = inspect(db.engine)
        for _, tables, views in REVISIONS:
            assert tables <= set(insp.get_table_names())
            assert views <= set(insp.get_view_names())
        assert migrate.require_current_schema(db.engine) == migrate.head_revision()

        for i, (revision, tables, views) in enumerate(REVISIONS):
            with db.engine.connect() as conn:
                assert migrate.current_revision(conn) == revision
            migrate.downgrade(db.engine, "-1")
            insp = inspect(db.engine)
            assert not tables & set(insp.get_table_names()), revision
            assert not views & set(insp.get_view_names()), revision
            for _, older_tables, older_views in REVISIONS[i + 1 :]:
                assert older_tables <= set(insp.get_table_names())
                assert older_views <= set(insp.get_view_names())
        with db.engine.connect() as conn:
            assert migrate.current_revision(conn) is None

        migrate.upgrade(db.engine)
        assert migrate.require_current_schema(db.engine) == migrate.head_revision()
    finally:
        db.close()


def test_models_match_the_migrated_schema(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_schema_problems_name_the_command_to_run() -> None:
    head = migrate.head_revision()
    assert migrate.schema_problem(head) is None
    assert "run `inferwatch db upgrade`" in (migrate.schema_problem(None) or "")
    newer = migrate.schema_problem("9999_from_the_future") or ""
    assert "newer InferWatch" in newer


def test_view_columns_are_named_for_humans(db: Database) -> None:
    columns = [c["name"] for c in inspect(db.engine).get_columns("llm_requests")]
    for name in (
        "trace_id",
        "model",
        "started_at",
        "ttft_ms",
        "tpot_ms",
        "e2e_ms",
        "queue_ms",
        "input_tokens",
        "output_tokens",
        "status",
        "error",
        "prompt",
        "completion",
    ):
        assert name in columns
