"""A child process InferWatch starts and answers for: its own process group, dies with its
parent (Linux), output forwarded line by line, readiness by a health URL, and stopped
group-wide (SIGTERM, then SIGKILL after a grace period) so it leaves no orphans.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

HEALTH_POLL_S = 0.5
DEFAULT_STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


class ChildDied(RuntimeError):
    """The child exited; the message carries its exit status and last output lines."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """One child process (group), named ``name`` in messages; each output line goes to
    ``on_line`` (default: this module's log)."""

    died_error: type[ChildDied] = ChildDied

    def __init__(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str],
        health_url: str,
        *,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._command = command
        self._env = dict(env)
        self._health_url = health_url
        self._on_line = on_line or (lambda line: log.info("[%s] %s", name, line))
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        log.debug("starting %s: %s", self.name, " ".join(self._command))
        self._tail.clear()
        self._proc = subprocess.Popen(
            self._command,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(
            target=self._forward_output, name=f"{self.name}-log", daemon=True
        )
        self._reader.start()

    def _forward_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._tail.append(line)
            self._on_line(line)

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def died(self) -> ChildDied:
        if self._reader is not None:
            self._reader.join(timeout=5)  # let the last lines arrive
        tail = "\n".join(self._tail)
        return self.died_error(
            f"{self.name} exited with status {self.exit_code()}; its last output:\n{tail}"
        )

    def wait_ready(self, timeout_s: float, progress: Callable[[float], None] | None = None) -> None:
        """Until the health URL answers 200; ``died()`` if it exits, ``TimeoutError`` if slow."""
        started = time.monotonic()
        while True:
            if self.exit_code() is not None:
                raise self.died()
            if healthy(self._health_url):
                return
            waited = time.monotonic() - started
            if waited > timeout_s:
                raise TimeoutError(f"{self.name} was not healthy after {timeout_s:.0f} s")
            if progress is not None:
                progress(waited)
            time.sleep(HEALTH_POLL_S)

    def stop(self, grace_s: float = DEFAULT_STOP_GRACE_S) -> int | None:
        """SIGTERM to the whole group, SIGKILL after ``grace_s``; the exit status."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, grace_s)
        _signal_group(proc.pid, signal.SIGKILL)  # whatever of the group is left
        code = proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # refused, reset, non-2xx, garbage
        return False
