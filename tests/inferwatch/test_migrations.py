"""Alembic owns the schema: upgrade from empty, downgrade a step, models match revisions."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from inferwatch.store import migrate
from inferwatch.store.database import Database
from inferwatch.store.models import Base

TELEMETRY_TABLES = {"engines", "engine_samples", "gpu_samples", "gpu_processes", "feedback"}
TELEMETRY_VIEWS = {"engine_rates", "llm_request_gpu", "llm_request_feedback", "llm_request_costs"}


def test_upgrade_from_empty_then_downgrade_step_by_step_then_upgrade_again(
    empty_db_url: str,
) -> None:
    db = Database(empty_db_url)
    try:
        with db.engine.connect() as conn:
            assert migrate.current_revision(conn) is None
        migrate.upgrade(db.engine)
        insp = inspect(db.engine)
        assert {"spans", *TELEMETRY_TABLES} <= set(insp.get_table_names())
        assert {"llm_requests", *TELEMETRY_VIEWS} <= set(insp.get_view_names())
        assert migrate.require_current_schema(db.engine) == migrate.head_revision()

        migrate.downgrade(db.engine, "-1")
        insp = inspect(db.engine)
        assert not TELEMETRY_TABLES & set(insp.get_table_names())
        assert not TELEMETRY_VIEWS & set(insp.get_view_names())
        assert "spans" in insp.get_table_names()

        migrate.downgrade(db.engine, "-1")
        insp = inspect(db.engine)
        assert "spans" not in insp.get_table_names()
        assert "llm_requests" not in insp.get_view_names()

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
