"""The collector process's entry point, as uvicorn imports it in each worker process.

``inferwatch collector`` checks the schema and then runs uvicorn with this
factory; with ``--workers N`` uvicorn starts N processes on one port, each
building its app here from the environment. Every worker finds the same
embedded Postgres (or ``INFERWATCH_DATABASE_URL``) and runs its own writer.
"""

from __future__ import annotations

from fastapi import FastAPI

from collector.app import create_app
from inferwatch.heap import freeze_startup_heap
from inferwatch.settings import Settings
from inferwatch.store.database import Database


def create() -> FastAPI:
    settings = Settings()
    app = create_app(
        settings.collector,
        Database.from_settings(settings.database_url, settings.home),
        owns_database=True,
    )
    freeze_startup_heap()
    return app
