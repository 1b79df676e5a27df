"""The bundled vLLM: a supervised subprocess on loopback that exports its spans to the collector.

Guarantees: vLLM runs in its own process group, so stopping it (SIGTERM, then
SIGKILL after a grace period) reaches the engine processes it spawns too. It
gets SIGTERM from the kernel if the process that started it dies, however it
dies, so it is never orphaned. Its output is forwarded line by line to the
log, and the last lines are kept to explain a crash.
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
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

HEALTH_POLL_S = 0.5
DEFAULT_STOP_GRACE_S = 30.0
LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class VllmConfig:
    model: str  # a local model directory, or (on machines that can download) a hub id
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 8001
    otlp_traces_endpoint: str | None = None  # e.g. http://127.0.0.1:4318/v1/traces
    max_model_len: int = 2048
    enforce_eager: bool = True  # no CUDA-graph/compile warm-up: starts in ~35 s on CPU
    cpu_kv_cache_gib: int | None = 1  # VLLM_CPU_KVCACHE_SPACE, for the CPU build
    extra_args: tuple[str, ...] = ()
    python: str = field(default=sys.executable)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def vllm_command(cfg: VllmConfig) -> list[str]:
    """The command line; ``python -m`` because the CPU wheel's console script checks
    for a distribution named ``vllm``."""
    command = [
        cfg.python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        cfg.model,
        "--served-model-name",
        cfg.served_model_name,
        "--host",
        cfg.host,
        "--port",
        str(cfg.port),
        "--max-model-len",
        str(cfg.max_model_len),
    ]
    if cfg.enforce_eager:
        command.append("--enforce-eager")
    if cfg.otlp_traces_endpoint:
        command += ["--otlp-traces-endpoint", cfg.otlp_traces_endpoint]
    return [*command, *cfg.extra_args]


def vllm_environment(cfg: VllmConfig, base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    env.setdefault("OTEL_SERVICE_NAME", "vllm")
    # vLLM's exporter defaults to gRPC; the collector's OTLP/HTTP endpoint is the one
    # InferWatch always serves.
    env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    if cfg.cpu_kv_cache_gib is not None:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kv_cache_gib))
    env.setdefault("HF_HUB_OFFLINE", "1" if os.path.isdir(cfg.model) else "0")
    return env


class VllmDied(RuntimeError):
    """vLLM exited; the message carries its exit status and last output lines."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class VllmProcess:
    """One vLLM server process (group). ``command``/``env`` come from the functions above,
    or from a test standing in for vLLM."""

    def __init__(self, command: list[str], env: Mapping[str, str], health_url: str) -> None:
        self._command = command
        self._env = dict(env)
        self._health_url = health_url
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        log.info("starting vLLM: %s", " ".join(self._command))
        self._proc = subprocess.Popen(
            self._command,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(target=self._forward_output, name="vllm-log", daemon=True)
        self._reader.start()

    def _forward_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._tail.append(line)
            log.info("[vllm] %s", line)

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def died(self) -> VllmDied:
        tail = "\n".join(self._tail)
        return VllmDied(f"vLLM exited with status {self.exit_code()}; its last output:\n{tail}")

    def wait_ready(self, timeout_s: float, progress: Callable[[float], None] | None = None) -> None:
        """Until ``/health`` answers 200; ``VllmDied`` if it exits, ``TimeoutError`` if slow."""
        started = time.monotonic()
        while True:
            if self.exit_code() is not None:
                if self._reader is not None:
                    self._reader.join(timeout=5)  # let the last lines arrive
                raise self.died()
            if _healthy(self._health_url):
                return
            waited = time.monotonic() - started
            if waited > timeout_s:
                raise TimeoutError(f"vLLM was not healthy after {timeout_s:.0f} s")
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
                log.warning("vLLM did not stop within %.0f s; killing it", grace_s)
        _signal_group(proc.pid, signal.SIGKILL)  # whatever of the group is left
        code = proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # refused, reset, non-2xx, garbage
        return False
