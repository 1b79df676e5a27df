"""`inferwatch serve` as a user runs it, with a stand-in `vllm` package on PYTHONPATH.

The stand-in answers `/health` like vLLM's server and can be killed; the real
vLLM is exercised by the e2e test. Here: the gateway comes up in front of it,
and a vLLM that dies while serving takes `serve` down with a clear report.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.ports import free_port
from inferwatch.process import healthy
from tests.inferwatch.cli_helpers import cli_env
from tests.servers import ServerThread
from tests.serving.stand_in import stand_in_vllm


def registry_app(registered: list[dict[str, Any]]) -> Starlette:
    """Stands in for the collector's engine registry."""

    async def put(request: Request) -> JSONResponse:
        registered.append(await request.json())
        return JSONResponse({"id": 1})

    return Starlette(routes=[Route("/v1/engines", put, methods=["PUT"])])


def test_serve_runs_the_gateway_and_stops_when_vllm_dies(tmp_path: Path) -> None:
    registered: list[dict[str, Any]] = []
    with ServerThread(registry_app(registered)) as collector:
        serve_until_vllm_dies(tmp_path, collector, registered)


def serve_until_vllm_dies(tmp_path: Path, collector: str, registered: list[dict[str, Any]]) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    gateway_port, vllm_port = free_port(), free_port()
    env = cli_env(
        tmp_path / "home",
        INFERWATCH_MODEL=str(model),
        INFERWATCH_SERVING__COLLECTOR_URL=collector,
        INFERWATCH_SERVING__UPSTREAM_URL=f"http://127.0.0.1:{vllm_port}",
        PYTHONPATH=os.pathsep.join(
            [str(stand_in_vllm(tmp_path / "fake")), os.environ.get("PYTHONPATH", "")]
        ),
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.cli", "serve", "--port", str(gateway_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert serve.poll() is None, serve.stdout.read()  # type: ignore[union-attr]
            if healthy(f"http://127.0.0.1:{gateway_port}/readyz"):
                break
            assert time.monotonic() < deadline, "gateway never became ready"
            time.sleep(0.2)
        models = httpx.get(f"http://127.0.0.1:{gateway_port}/v1/models").json()
        assert models["data"][0]["id"] == "stand-in"

        (vllm,) = [
            p
            for p in psutil.Process(serve.pid).children()
            if "vllm.entrypoints.openai.api_server" in " ".join(p.cmdline())
        ]
        assert "--served-model-name" in vllm.cmdline() and "my-model" in vllm.cmdline()
        assert registered == [
            {
                "url": f"http://127.0.0.1:{vllm_port}",
                "name": "my-model",
                "pid": vllm.pid,
                "host": socket.gethostname(),
            }
        ]
        vllm.send_signal(signal.SIGKILL)
        assert serve.wait(timeout=60) == 1
        output = serve.stdout.read()  # type: ignore[union-attr]
        assert "vLLM exited with status -9" in output
        assert "stand-in vLLM serving" in output  # its output was forwarded
    finally:
        if serve.poll() is None:
            serve.kill()
