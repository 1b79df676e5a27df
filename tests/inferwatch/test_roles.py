"""``inferwatch db grant-readonly``: the role reads everything, now and after migrations, and
cannot write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from inferwatch.store.database import Database, libpq_url
from inferwatch.store.roles import grant_readonly
from tests.inferwatch.cli_helpers import cli_env, inferwatch
from tests.seed import requests_at, store_requests


def _as(db: Database, user: str) -> str:
    return libpq_url(make_url(db.url).set(username=user, password=None).render_as_string(False))


def test_a_readonly_role_reads_and_cannot_write(db: Database) -> None:
    store_requests(db, requests_at(datetime(2026, 11, 20, tzinfo=UTC), 3))
    user = f"ro_{uuid.uuid4().hex[:8]}"
    assert grant_readonly(db.engine, user, "secret") is True
    assert grant_readonly(db.engine, user) is False  # idempotent
    with db.engine.begin() as conn:  # a table a later migration adds
        conn.execute(text("CREATE TABLE later (x int)"))
        conn.execute(text("INSERT INTO later VALUES (1)"))
    with psycopg.connect(_as(db, user)) as conn:
        assert conn.execute("SELECT count(*) FROM llm_requests").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM rollup_requests").fetchone() == (0,)
        assert conn.execute("SELECT x FROM later").fetchone() == (1,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    with (
        psycopg.connect(_as(db, user)) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("DELETE FROM spans")
    with psycopg.connect(_as(db, user), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")  # even then: no privilege
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM spans")


def test_the_command(db_url: str, tmp_path: Path) -> None:
    user = f"ro_{uuid.uuid4().hex[:8]}"
    env = cli_env(tmp_path / "home", db_url)
    missing = inferwatch("db", "grant-readonly", user, "--password-env", "RO_PASSWORD", env=env)
    assert missing.returncode == 2
    assert "RO_PASSWORD is not set" in missing.stderr
    env["RO_PASSWORD"] = "s3cret"
    created = inferwatch("db", "grant-readonly", user, "--password-env", "RO_PASSWORD", env=env)
    assert created.returncode == 0, created.stderr
    assert f"created read-only role {user}" in created.stderr
    again = inferwatch("db", "grant-readonly", user, env=env)
    assert f"updated read-only role {user}" in again.stderr
