"""Small helpers the benchmarks share: free loopback ports, waiting for readiness, CPU used."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import psutil

from inferwatch.process import healthy


def ephemeral_low() -> int:
    """The first port the kernel hands out for outgoing connections (Linux; else 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the ephemeral range: a port the kernel picked for us would
    be free now, but any outgoing connection (vLLM starts dozens) may take it before the
    server it is meant for binds it."""
    low = ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found below {low}")


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthy(url):
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU the processes have used so far (one that has exited counts 0)."""
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total
