"""One leader per database among replicas: the process holding a Postgres advisory lock leads.

Some work must happen once however many replicas run: the collector's engine
scraper and GPU poller, the alert engine's evaluation and notifications. Each
replica's ``Leadership`` keeps one connection and tries to take a session-level
advisory lock (one key per kind of work) on it; the one that has it leads until
its connection ends (a crashed replica's lock goes with its connection), and
the others take over on their next try.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from inferwatch.daemon import Daemon

log = logging.getLogger(__name__)

# Advisory lock keys: any fixed int64 per kind of work.
COLLECTOR_POLLERS = 0x1F_E4_3A_7C_11_0D_5B_01
ALERT_ENGINE = 0x1F_E4_3A_7C_11_0D_5B_02
# Held for each alert evaluation's write transaction (not a leadership lock).
ALERT_WRITES = 0x1F_E4_3A_7C_11_0D_5B_03
EVALUATION_SAMPLER = 0x1F_E4_3A_7C_11_0D_5B_04
RETRY_S = 5.0


class Leadership(Daemon):
    name = "leadership"

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        *,
        lock_key: int = COLLECTOR_POLLERS,
        role: str = "the engine scraper and GPU poller",
        retry_s: float = RETRY_S,
    ) -> None:
        super().__init__()
        self._connect = connect
        self.lock_key = lock_key
        self.role = role
        self.retry_s = retry_s
        self.leading = False

    async def run(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect()
                        await conn.set_autocommit(True)
                    if self.leading:
                        await conn.execute("SELECT 1")  # still connected: still holding it
                    else:
                        cursor = await conn.execute(
                            "SELECT pg_try_advisory_lock(%s)", (self.lock_key,)
                        )
                        row = await cursor.fetchone()
                        self.leading = bool(row and row[0])
                        if self.leading:
                            log.info("this process now runs %s", self.role)
                except psycopg.Error as exc:
                    if self.leading:
                        log.warning("lost the lock for %s with the database: %s", self.role, exc)
                    self.leading = False
                    if conn is not None:
                        await conn.close()
                    conn = None
                await self.pause(self.retry_s)
        finally:
            self.leading = False
            if conn is not None:
                await conn.close()  # ends the session: the lock goes to another replica


class LeaderPoller(Daemon):
    """Runs ``round()`` every ``interval_s`` while this process leads.

    A round that fails (the database away, say) is logged and the next one
    comes as usual; ``close()`` releases what the rounds held."""

    def __init__(self, leadership: Leadership, *, interval_s: float) -> None:
        super().__init__()
        self.leadership = leadership
        self.interval_s = interval_s

    @abstractmethod
    async def round(self) -> None: ...

    def following(self) -> None:
        """Called instead of ``round()`` while another worker leads."""

    async def close(self) -> None:
        """Called once the loop has ended."""

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                if self.leadership.leading:
                    try:
                        await self.round()
                    except Exception:
                        log.exception("%s: round failed", self.name)
                else:
                    self.following()
                await self.pause(self.interval_s - (time.monotonic() - started))
        finally:
            await self.close()
