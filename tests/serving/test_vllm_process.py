"""The vLLM supervisor, with a stand-in process: readiness, crash reports, stopping, no orphans."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from bench.ports import free_port
from serving.vllm import VllmConfig, VllmDied, VllmProcess, vllm_command, vllm_environment


def fake(port: int, *args: str) -> VllmProcess:
    command = [sys.executable, "-m", "tests.serving.fake_vllm", "--port", str(port), *args]
    return VllmProcess(command, os.environ, f"http://127.0.0.1:{port}/health")


def test_command_and_environment() -> None:
    cfg = VllmConfig(
        model="/models/smol",
        served_model_name="smol",
        port=8123,
        otlp_traces_endpoint="http://127.0.0.1:4318/v1/traces",
        extra_args=("--dtype", "bfloat16"),
        python="/py",
    )
    command = vllm_command(cfg)
    assert command[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--model") + 1] == "/models/smol"
    assert command[command.index("--served-model-name") + 1] == "smol"
    assert command[command.index("--port") + 1] == "8123"
    assert command[command.index("--otlp-traces-endpoint") + 1] == "http://127.0.0.1:4318/v1/traces"
    assert "--enforce-eager" in command and command[-2:] == ["--dtype", "bfloat16"]
    env = vllm_environment(cfg, {"PATH": "/bin", "VLLM_CPU_KVCACHE_SPACE": "4"})
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4"  # the operator's choice wins
    assert env["PATH"] == "/bin"


def test_ready_then_stopped_with_its_children(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="serving.vllm")
    pidfile = tmp_path / "child.pid"
    proc = fake(free_port(), "--ready-after", "1", "--child-pidfile", str(pidfile))
    proc.start()
    seen: list[float] = []
    proc.wait_ready(30, progress=seen.append)
    assert seen, "no progress was reported while waiting"
    child = int(pidfile.read_text())
    assert psutil.pid_exists(child)
    assert proc.stop(grace_s=10) is not None
    assert "[vllm] INFO fake vLLM loading weights" in caplog.text
    assert _gone(child), "vLLM's own child outlived the stop"


def test_a_crash_while_starting_is_reported_with_its_output() -> None:
    proc = fake(free_port(), "--ready-after", "60", "--die-after", "0.5")
    proc.start()
    with pytest.raises(VllmDied, match="status 3") as died:
        proc.wait_ready(30)
    assert "out of memory" in str(died.value)


def test_sigterm_ignored_means_sigkill_after_the_grace_period() -> None:
    proc = fake(free_port(), "--ignore-sigterm")
    proc.start()
    proc.wait_ready(30)
    started = time.monotonic()
    assert proc.stop(grace_s=1) == -9
    assert time.monotonic() - started < 10


def test_vllm_dies_with_a_parent_that_was_killed(tmp_path: Path) -> None:
    port = free_port()
    parent_script = textwrap.dedent(f"""
        import os, sys, time
        from serving.vllm import VllmProcess
        proc = VllmProcess([sys.executable, "-m", "tests.serving.fake_vllm", "--port", "{port}"],
                           os.environ, "http://127.0.0.1:{port}/health")
        proc.start()
        proc.wait_ready(30)
        print(proc.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    vllm_pid = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no cleanup code runs in the parent
    parent.wait()
    assert _gone(vllm_pid), "vLLM was orphaned"


def _gone(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False
