"""Alembic environment: runs revisions on the connection InferWatch hands in.

``inferwatch db upgrade`` passes its connection in ``config.attributes``; run
as plain ``alembic``, the URL comes from ``sqlalchemy.url`` or, failing that,
from InferWatch's own settings (embedded server included).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from inferwatch.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from inferwatch.settings import Settings
    from inferwatch.store.database import Database

    url = config.get_main_option("sqlalchemy.url")
    settings = Settings()
    db = Database(url or settings.database_url, home=settings.home)
    try:
        with create_engine(db.url).connect() as conn:
            _run(conn)
    finally:
        db.close()


if context.is_offline_mode():
    raise SystemExit("InferWatch migrations run online only: use `inferwatch db upgrade`")
run_migrations_online()
