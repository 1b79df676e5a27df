"""Running InferWatch's processes together, as ``inferwatch up`` does.

Services start in order, each once the one before is ready (its health URL
answers 200). Their output is one stream, each line prefixed with the
service's name in its colour. A service that exits is reported with its last
lines and started again after a back-off that doubles from ``FIRST_BACKOFF_S``
to ``MAX_BACKOFF_S`` (and starts over once it has stayed up ``STABLE_S``).
``stop()`` stops them in reverse order; each is a process group that also
dies with its parent, so nothing is left behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from inferwatch.process import ChildProcess

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
STABLE_S = 60.0
WATCH_S = 0.5
COLOURS = ("cyan", "magenta", "green", "yellow", "blue")


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    health_url: str
    ready_timeout_s: float = 120.0
    stop_grace_s: float = 30.0


class Supervisor:
    def __init__(
        self,
        services: list[Service],
        env: Mapping[str, str],
        console: Console,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.console = console
        self.clock = clock
        width = max(len(s.name) for s in services)
        self._lock = threading.Lock()
        self.children = {
            s.name: ChildProcess(
                s.name,
                s.command,
                env,
                s.health_url,
                on_line=self._printer(s.name.rjust(width), COLOURS[i % len(COLOURS)]),
            )
            for i, s in enumerate(services)
        }
        self._started_at: dict[str, float] = {}
        self._backoff = {s.name: FIRST_BACKOFF_S for s in services}
        self._restart_at: dict[str, float] = {}
        self.restarts = {s.name: 0 for s in services}

    def _printer(self, label: str, colour: str) -> Callable[[str], None]:
        def print_line(line: str) -> None:
            with self._lock:
                self.console.print(Text(f"{label} │ ", style=colour) + Text(line))

        return print_line

    def say(self, message: str, style: str = "bold") -> None:
        with self._lock:
            self.console.print(Text(message, style=style))

    def start(self, progress: Callable[[Service, float], None] | None = None) -> None:
        """Starts every service in order, each once the one before is ready.

        Raises ``ChildDied`` or ``TimeoutError`` naming the service that failed."""
        for service in self.services:
            child = self.children[service.name]
            child.start()
            self._started_at[service.name] = self.clock()
            report = None if progress is None else (lambda waited, s=service: progress(s, waited))
            child.wait_ready(service.ready_timeout_s, progress=report)

    def check(self) -> None:
        """One supervision step: report services that exited, restart those whose turn came."""
        now = self.clock()
        for service in self.services:
            name, child = service.name, self.children[service.name]
            if name in self._restart_at:
                if now >= self._restart_at[name]:
                    del self._restart_at[name]
                    self.restarts[name] += 1
                    self.say(f"restarting {name} (restart {self.restarts[name]})", "yellow")
                    child.start()
                    self._started_at[name] = now
                continue
            if child.exit_code() is None:
                continue
            if now - self._started_at.get(name, now) >= STABLE_S:
                self._backoff[name] = FIRST_BACKOFF_S
            delay = self._backoff[name]
            self._backoff[name] = min(delay * 2, MAX_BACKOFF_S)
            self._restart_at[name] = now + delay
            self.say(f"{child.died()}\nrestarting {name} in {delay:.0f} s", "red")

    def supervise(self, until: threading.Event) -> None:
        while not until.wait(WATCH_S):
            self.check()

    def stop(self) -> None:
        for service in reversed(self.services):
            child = self.children[service.name]
            if child.pid is not None and child.exit_code() is None:
                self.say(f"stopping {service.name}", "dim")
            child.stop(grace_s=service.stop_grace_s)
