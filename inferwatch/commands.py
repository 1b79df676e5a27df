"""What every ``inferwatch`` subcommand shares: settings, logging, the database, error output."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text

from inferwatch.settings import Settings
from inferwatch.store.database import Database

# Messages are printed as written: no markup parsing ("[cpu]" stays), no hard wrapping.
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def setup(settings: Settings, *, sigterm_exit_code: int = 143) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # SIGTERM ends the process through normal exit, so the embedded server is released.
    # Servers exit 0: for them SIGTERM is the normal way to stop (uvicorn drains first,
    # then re-raises the signal).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(sigterm_exit_code))


@contextmanager
def command_database(*, sigterm_exit_code: int = 143) -> Iterator[tuple[Settings, Database]]:
    """Settings, logging and the database for one command; the database is closed after."""
    settings = Settings()
    setup(settings, sigterm_exit_code=sigterm_exit_code)
    db = Database.from_settings(settings.database_url, settings.home)
    try:
        yield settings, db
    finally:
        db.close()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text("error: ", style="red") + Text(message))
    return typer.Exit(code)
