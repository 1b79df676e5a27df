"""The lifecycle every background worker shares: ``start``, ``run``, ``stop``.

A daemon runs one asyncio task. ``stop`` asks it to finish (``request_stop``,
which a subclass may override to drain its queue first) and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


class Daemon(ABC):
    name: str = "daemon"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} already started")
        self._task = asyncio.create_task(self._main(), name=self.name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self.request_stop()
        await self._task

    def request_stop(self) -> None:
        self._stopping.set()

    async def pause(self, seconds: float) -> None:
        """Sleeps ``seconds``, or less when a stop is requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(0.0, seconds))

    @abstractmethod
    async def run(self) -> None:
        """The work; returns once ``self._stopping`` is set and the work is drained."""

    async def _main(self) -> None:
        try:
            await self.run()
        except Exception:
            log.exception("%s stopped on an unexpected error", self.name)
            raise


@asynccontextmanager
async def running(daemons: Sequence[Daemon]) -> AsyncIterator[None]:
    """Starts ``daemons`` in order; on exit stops them in reverse order."""
    started: list[Daemon] = []
    try:
        for daemon in daemons:
            await daemon.start()
            started.append(daemon)
        yield
    finally:
        for daemon in reversed(started):
            await daemon.stop()
