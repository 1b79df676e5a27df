"""Shared fixtures: a real PostgreSQL, a migrated template, and a fresh database per test.

The server is the embedded one the product uses (in a temporary home), or the
one at ``INFERWATCH_DATABASE_URL`` when set. The schema is built once by the
real Alembic migrations into a template database; each test gets its own copy
(``CREATE DATABASE … TEMPLATE``), so tests are isolated and need no cleanup.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from inferwatch.store import migrate
from inferwatch.store.database import Database, libpq_url
from inferwatch.store.embedded import EmbeddedPostgres

TEMPLATE_DB = "inferwatch_test_template"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    return libpq_url(make_url(url).set(database=name).render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a maintenance database on the test server (for CREATE DATABASE)."""
    external = os.environ.get("INFERWATCH_DATABASE_URL")
    if external:
        yield _with_database(external, "postgres")
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pghome"))
    try:
        yield _with_database(server.url, "postgres")
    finally:
        server.close()


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> str:
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    url = _with_database(pg_admin_url, TEMPLATE_DB)
    db = Database(url)
    try:
        migrate.upgrade(db.engine)
    finally:
        db.close()
    return url


def create_database(pg_admin_url: str, *, template: str | None) -> str:
    name = f"inferwatch_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        query = "CREATE DATABASE {} TEMPLATE {}" if template else "CREATE DATABASE {}"
        conn.execute(
            sql.SQL(query).format(sql.Identifier(name), sql.Identifier(template or "template1"))
        )
    return _with_database(pg_admin_url, name)


def drop_database(pg_admin_url: str, url: str) -> None:
    name = make_url(url).database
    assert name is not None
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    url = create_database(pg_admin_url, template=TEMPLATE_DB)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A database of this test's own with no schema at all."""
    url = create_database(pg_admin_url, template=None)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"
