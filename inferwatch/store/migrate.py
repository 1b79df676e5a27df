"""Applying Alembic revisions, and refusing to run on a schema that does not match the code.

Every process calls ``require_current_schema`` at start: an older schema means
``inferwatch db upgrade`` has not run; an unknown revision means the database
was upgraded by a newer InferWatch than this one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


class SchemaError(RuntimeError):
    """The database schema is not the one this code was written for."""


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/ holds no revision"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def schema_problem(current: str | None) -> str | None:
    """Why a database at revision ``current`` cannot be used by this code, or None."""
    head = head_revision()
    if current == head:
        return None
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current is None:
        return "the database has no InferWatch schema yet: run `inferwatch db upgrade`"
    if current in known:
        return (
            f"the database schema is at revision {current}, older than this code's {head}: "
            "run `inferwatch db upgrade`"
        )
    return (
        f"the database schema is at revision {current}, which this InferWatch does not know "
        f"(its newest is {head}): the database was upgraded by a newer InferWatch; upgrade "
        "this installation"
    )


def require_current_schema(engine: Engine) -> str:
    """The current revision; raises ``SchemaError`` when it is not this code's head."""
    with engine.connect() as conn:
        current = current_revision(conn)
    problem = schema_problem(current)
    if problem is not None:
        raise SchemaError(problem)
    assert current is not None
    return current


async def async_schema_problem(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        current = await conn.run_sync(current_revision)
    return schema_problem(current)


async def async_require_current_schema(engine: AsyncEngine) -> None:
    """Raises ``SchemaError`` when the schema is not this code's head (at a process's start)."""
    problem = await async_schema_problem(engine)
    if problem is not None:
        raise SchemaError(problem)
