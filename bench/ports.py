"""Small helpers the benchmarks share: free loopback ports and waiting for readiness."""

from __future__ import annotations

import socket
import time

from inferwatch.process import healthy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthy(url):
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")
