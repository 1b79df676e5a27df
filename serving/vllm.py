"""The bundled vLLM: a supervised subprocess on loopback that exports its spans to the collector.

Guarantees (from ``inferwatch.process``): vLLM runs in its own process group,
so stopping it (SIGTERM, then SIGKILL after a grace period) reaches the engine
processes it spawns too. It gets SIGTERM from the kernel if the process that
started it dies, however it dies, so it is never orphaned. Its output is
forwarded line by line to the log, and the last lines are kept to explain a crash.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from inferwatch.process import ChildDied, ChildProcess

log = logging.getLogger(__name__)


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


class VllmDied(ChildDied):
    """vLLM exited; the message carries its exit status and last output lines."""


class VllmProcess(ChildProcess):
    """One vLLM server process (group). ``command``/``env`` come from the functions above,
    or from a test standing in for vLLM."""

    died_error = VllmDied

    def __init__(self, command: list[str], env: Mapping[str, str], health_url: str) -> None:
        super().__init__("vLLM", command, env, health_url, on_line=_log_line)


def _log_line(line: str) -> None:
    log.info("[vllm] %s", line)
