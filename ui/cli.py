"""``inferwatch ui``: the Streamlit dashboard, as a child process holding this command's database.

The dashboard reads with read-only transactions. With the embedded database,
this command keeps the server up for as long as the dashboard runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from inferwatch.commands import command_database, err, fail

APP = Path(__file__).with_name("app.py")
READY_TIMEOUT_S = 120.0


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def ui(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Run the dashboard (Streamlit) until interrupted."""
    from inferwatch.process import ChildDied, ChildProcess
    from inferwatch.store.database import libpq_url
    from inferwatch.store.migrate import SchemaError, require_current_schema

    with command_database(sigterm_exit_code=0) as (settings, db):
        try:
            require_current_schema(db.engine)
        except SchemaError as exc:
            raise fail(str(exc), 2) from None
        cfg = settings.ui
        host, port = host or cfg.host, port or cfg.port
        env = {**os.environ, "INFERWATCH_DATABASE_URL": libpq_url(db.url)}
        child = ChildProcess(
            "dashboard",
            streamlit_command(host, port),
            env,
            f"http://{host}:{port}/_stcore/health",
            on_line=lambda line: err.print(f"[dashboard] {line}"),
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        child.start()
        try:
            child.wait_ready(READY_TIMEOUT_S)
            err.print(f"dashboard on http://{host}:{port}")
            while not stop.wait(1.0):
                if child.exit_code() is not None:
                    raise child.died()
        except (ChildDied, TimeoutError) as exc:
            raise fail(str(exc)) from None
        finally:
            child.stop()
