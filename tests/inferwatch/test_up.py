"""`inferwatch up` as a user runs it: everything starts in order on a fresh home, a crashed
service is restarted, and Ctrl-C stops it all, leaving no process and no database behind.

vLLM is the stand-in package (the real one is in the e2e tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from bench.ports import free_port
from inferwatch.process import healthy
from tests.inferwatch.cli_helpers import cli_env, inferwatch
from tests.serving.stand_in import stand_in_vllm


class Output:
    """Collects a process's output lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert self._proc.poll() is None or needle in self.text, self.text
            assert time.monotonic() < deadline, f"no {needle!r} in:\n{self.text}"
            time.sleep(0.1)


def up_env(home: Path, model: Path, gateway_port: int, **extra: str) -> dict[str, str]:
    """A fresh home on free ports (collector, gateway, vLLM), the model given."""
    return cli_env(
        home,
        INFERWATCH_MODEL=str(model),
        INFERWATCH_LOG_LEVEL="INFO",
        INFERWATCH_COLLECTOR__PORT=str(free_port()),
        INFERWATCH_SERVING__PORT=str(gateway_port),
        INFERWATCH_SERVING__UPSTREAM_URL=f"http://127.0.0.1:{free_port()}",
        INFERWATCH_ALERTING__PORT=str(free_port()),
        INFERWATCH_EVALUATORS__PORT=str(free_port()),
        INFERWATCH_UI__PORT=str(free_port()),
        **extra,
    )


def start_up(env: dict[str, str]) -> tuple[subprocess.Popen[str], Output]:
    up = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return up, Output(up)


def assert_all_stopped(processes: list[psutil.Process], home: Path) -> None:
    time.sleep(0.5)
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"left running: {[p.cmdline() for p in left]}"
    assert not (home / "pgdata" / "postmaster.pid").exists(), "embedded database left running"


def test_up_starts_supervises_and_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = tmp_path / "my-model"
    model.mkdir()
    gateway_port = free_port()
    stand_in = stand_in_vllm(tmp_path / "fake")
    env = up_env(
        home,
        model,
        gateway_port,
        PYTHONPATH=os.pathsep.join([str(stand_in), os.environ.get("PYTHONPATH", "")]),
    )
    collector = f"http://127.0.0.1:{env['INFERWATCH_COLLECTOR__PORT']}"
    up, out = start_up(env)
    try:
        out.wait_for("InferWatch is up")
        assert "schema at revision" in out.text and "CPU" in out.text
        assert healthy(f"{collector}/readyz")
        assert healthy(f"http://127.0.0.1:{gateway_port}/readyz")
        evaluators = f"http://127.0.0.1:{env['INFERWATCH_EVALUATORS__PORT']}"
        running = httpx.get(f"{evaluators}/readyz").json()["evaluators"]
        assert running == ["toxicity", "hallucination-confidence", "hallucination-grounding"]
        alerts = f"http://127.0.0.1:{env['INFERWATCH_ALERTING__PORT']}"
        assert healthy(f"{alerts}/readyz")
        assert httpx.get(f"{alerts}/readyz").json()["rules"] == 14  # the default pack
        # Every shipped rule is evaluated against the live database, none fails.
        evaluated = 'inferwatch_alerting_rule_evaluations_total{result="ok",rule="CostOverBudget"}'
        deadline = time.monotonic() + 60
        while evaluated not in (exposed := httpx.get(f"{alerts}/metrics").text):
            assert time.monotonic() < deadline, exposed
            time.sleep(0.2)
        assert 'result="error"' not in exposed
        assert healthy(f"http://127.0.0.1:{env['INFERWATCH_UI__PORT']}/_stcore/health")
        engines = httpx.get(f"{collector}/v1/engines").json()
        assert [e["url"] for e in engines] == [env["INFERWATCH_SERVING__UPSTREAM_URL"]]
        assert "stand-in vLLM serving" in out.text  # every service's output, one stream

        processes = psutil.Process(up.pid).children(recursive=True)
        (collector_proc,) = [
            p for p in psutil.Process(up.pid).children() if "collector" in p.cmdline()
        ]
        collector_proc.kill()  # a crash: reported, then restarted
        out.wait_for("restarting collector in 1 s")
        out.wait_for("restarting collector (restart 1)")
        deadline = time.monotonic() + 60
        while not healthy(f"{collector}/readyz"):
            assert time.monotonic() < deadline, out.text
            time.sleep(0.2)
        processes += psutil.Process(up.pid).children(recursive=True)

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=120) == 0, out.text
    finally:
        if up.poll() is None:
            up.kill()
    assert_all_stopped(processes, home)
    assert "stopping serve" in out.text and "stopped" in out.text


def test_up_in_the_background_with_status_and_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = tmp_path / "my-model"
    model.mkdir()
    stand_in = stand_in_vllm(tmp_path / "fake")
    env = up_env(
        home,
        model,
        free_port(),
        PYTHONPATH=os.pathsep.join([str(stand_in), os.environ.get("PYTHONPATH", "")]),
    )
    started = inferwatch("up", "--detach", env=env, timeout=180)
    assert started.returncode == 0, started.stderr
    assert "gateway" in started.stdout and "up.log" in started.stderr
    pid = json.loads((home / "run" / "up.json").read_text())["pid"]
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    try:
        shown = inferwatch("status", env=env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "collector" in shown.stdout and "gateway" in shown.stdout
        assert "not ready" not in shown.stdout
        twice = inferwatch("up", env=env)
        assert twice.returncode == 2 and "already up" in twice.stderr
        stopped = inferwatch("down", env=env)
        assert stopped.returncode == 0 and f"stopped InferWatch (pid {pid})" in stopped.stderr
    finally:
        for process in processes:
            if process.is_running():
                process.kill()
    assert_all_stopped(processes, home)
    assert inferwatch("status", env=env).returncode == 3
    again = inferwatch("down", env=env)
    assert again.returncode == 0 and "was not up" in again.stderr
    log = (home / "run" / "up.log").read_text()
    assert "InferWatch is up" in log and "stopping serve" in log
