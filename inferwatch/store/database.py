"""Where the database is and how each process talks to it.

``Database`` resolves the URL once (``INFERWATCH_DATABASE_URL``, else the shared
embedded server under the InferWatch home) and builds SQLAlchemy engines on
demand. Sessions are transactions: ``with db.session() as s`` commits on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

from inferwatch.store.embedded import EmbeddedPostgres

DRIVER = "postgresql+psycopg"


def sqlalchemy_url(url: str) -> str:
    """``url`` with InferWatch's driver (psycopg 3), whatever scheme it was given with."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"InferWatch needs PostgreSQL, got a {parsed.get_backend_name()} URL")
    return parsed.set(drivername=DRIVER).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """``url`` as libpq and psql understand it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """One process's access to the InferWatch database."""

    def __init__(self, url: str | None = None, *, home: Path | None = None) -> None:
        if url is None and home is None:
            raise ValueError("need a database URL or an InferWatch home for the embedded server")
        self._explicit_url = url
        self._embedded = EmbeddedPostgres(home) if url is None and home is not None else None
        self._engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None

    @classmethod
    def from_settings(cls, database_url: str | None, home: Path) -> Database:
        return cls(database_url, home=home)

    @property
    def embedded(self) -> EmbeddedPostgres | None:
        return self._embedded

    @property
    def url(self) -> str:
        """SQLAlchemy URL (starts the embedded server on first use)."""
        if self._explicit_url is not None:
            return sqlalchemy_url(self._explicit_url)
        assert self._embedded is not None
        return sqlalchemy_url(self._embedded.url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.url, pool_pre_ping=True)
        return self._engine

    @property
    def async_engine(self) -> AsyncEngine:
        if self._async_engine is None:
            self._async_engine = create_async_engine(self.url, pool_pre_ping=True)
        return self._async_engine

    async def connect_raw(self) -> psycopg.AsyncConnection[Any]:
        return await connect_raw(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with sessionmaker(self.engine)() as s, s.begin():
            yield s

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[AsyncSession]:
        async with async_sessionmaker(self.async_engine)() as s, s.begin():
            yield s

    async def aclose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None
        self.close()

    def close(self) -> None:
        """Dispose of connections and release the embedded server (if this process used it)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._embedded is not None:
            self._embedded.close()


CONNECT_TIMEOUT_S = 5


async def connect_raw(url: str) -> psycopg.AsyncConnection[Any]:
    """A plain psycopg connection, for bulk paths (COPY) that bypass the ORM."""
    return await psycopg.AsyncConnection.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_S)
