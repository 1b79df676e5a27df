"""The embedded server is shared by every process on a home and stopped by the last one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

from inferwatch.store.embedded import EmbeddedPostgres

HOLDER = textwrap.dedent("""
    import sys
    from inferwatch.store.embedded import EmbeddedPostgres
    server = EmbeddedPostgres(__import__("pathlib").Path(sys.argv[1]))
    print(server.url, flush=True)
    sys.stdin.readline()  # hold the server until told to go
    server.close()
""")


def test_second_process_reuses_the_server_and_the_last_one_stops_it(home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        holder_url = holder.stdout.readline().strip()
        pidfile = home / "pgdata" / "postmaster.pid"
        postmaster = pidfile.read_text().split()[0]

        mine = EmbeddedPostgres(home)
        assert mine.is_running()
        assert mine.url == holder_url
        assert pidfile.read_text().split()[0] == postmaster  # the same server, not a new one
        with psycopg.connect(mine.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("inferwatch",)
        mine.close()
        assert pidfile.exists(), "closing one handle stopped a server another process uses"

        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
        assert not pidfile.exists()
    finally:
        holder.kill()


def test_handles_of_dead_processes_do_not_keep_the_server_up(home: Path) -> None:
    server = EmbeddedPostgres(home)
    _ = server.url
    handles = home / "pgdata" / ".handle_pids.json"
    pids = json.loads(handles.read_text())
    dead = 2**22 + 12345  # a process that no longer exists, killed before it could close
    handles.write_text(json.dumps([*pids, dead]))
    server.close()  # the last living handle: the dead one is dropped, the server stops
    assert not (home / "pgdata" / "postmaster.pid").exists()

    handles.write_text(json.dumps([dead]))
    again = EmbeddedPostgres(home)
    _ = again.url  # opening drops it too
    assert dead not in json.loads(handles.read_text())
    again.close()
    assert not (home / "pgdata" / "postmaster.pid").exists()


def test_handles_in_one_process_are_counted(home: Path) -> None:
    a, b = EmbeddedPostgres(home), EmbeddedPostgres(home)
    assert a.url == b.url
    a.close()
    with psycopg.connect(b.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    b.close()
    assert not a.is_running()
