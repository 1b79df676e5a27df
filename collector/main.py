"""The collector process's entry point, as uvicorn imports it in each worker process.

``inferwatch collector`` checks the schema and then runs uvicorn with this
factory; with ``--workers N`` uvicorn starts N processes on one port, each
building its app here from the environment. Every worker finds the same
embedded Postgres (or ``INFERWATCH_DATABASE_URL``) and runs its own writer.
"""

from __future__ import annotations

import gc

from fastapi import FastAPI

from collector.app import create_app
from inferwatch.settings import Settings
from inferwatch.store.database import Database


def create() -> FastAPI:
    settings = Settings()
    app = create_app(
        settings.collector,
        Database.from_settings(settings.database_url, settings.home),
        owns_database=True,
    )
    # Ingest allocates many short-lived containers; keep the cyclic collector from
    # rescanning every long-lived object of the process on each full collection.
    gc.collect()
    gc.freeze()
    return app
