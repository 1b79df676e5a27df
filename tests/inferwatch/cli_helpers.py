"""Running the ``inferwatch`` command as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from inferwatch.process import healthy


def cli_env(home: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_")}
    env["INFERWATCH_HOME"] = str(home)
    env["INFERWATCH_LOG_LEVEL"] = "WARNING"
    env["INFERWATCH_COLLECTOR__GRPC_PORT"] = "none"  # a test that wants gRPC picks a port
    if database_url is not None:
        env["INFERWATCH_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def inferwatch(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferwatch.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_collector(env: dict[str, str], port: int, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.cli", "collector", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited {proc.returncode}: {proc.stdout.read()}")  # type: ignore[union-attr]
        if healthy(f"http://127.0.0.1:{port}/readyz"):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("collector did not become ready")
