"""The README's first command, with the real model: `inferwatch up` on a fresh home serves
SmolLM2 on vLLM CPU, a request through the gateway lands in SQL, and Ctrl-C stops it all.

Marked e2e (needs `scripts/install-cpu.sh`); the prepared model is reused from
``INFERWATCH_E2E_HOME`` to save its preparation, the database is new."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.inferwatch.cli_helpers import cli_env, free_port, inferwatch
from tests.inferwatch.test_up import Output

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None and os.environ.get("INFERWATCH_E2E") != "required",
        reason="vLLM is not installed (scripts/install-cpu.sh test)",
    ),
]


def test_up_serves_the_default_model_into_sql(tmp_path: Path) -> None:
    import openai

    from serving.model import prepare_default_model

    models_home = Path(os.environ.get("INFERWATCH_E2E_HOME") or tmp_path / "models")
    model = prepare_default_model(models_home)
    home = tmp_path / "home"
    collector_port, gateway_port, vllm_port = free_port(), free_port(), free_port()
    env = cli_env(
        home,
        INFERWATCH_MODEL=str(model),
        INFERWATCH_LOG_LEVEL="INFO",
        INFERWATCH_COLLECTOR__PORT=str(collector_port),
        INFERWATCH_SERVING__PORT=str(gateway_port),
        INFERWATCH_SERVING__UPSTREAM_URL=f"http://127.0.0.1:{vllm_port}",
        INFERWATCH_SERVING__SERVED_MODEL_NAME="smol",
        INFERWATCH_SERVING__VLLM_MAX_MODEL_LEN="1024",
    )
    up = subprocess.Popen(
        [sys.executable, "-m", "inferwatch.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(up)
    try:
        out.wait_for("InferWatch is up", timeout=900)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="-")
        answer = client.chat.completions.with_raw_response.create(
            model="smol", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
        )
        trace_id = answer.headers["x-inferwatch-trace-id"]
        query = (
            "SELECT count(*) FROM llm_requests"
            f" WHERE trace_id = '{trace_id}' AND engine_span_id IS NOT NULL"
        )
        deadline = time.monotonic() + 60
        while inferwatch("sql", query, "-f", "csv", env=env).stdout.split() != ["count", "1"]:
            assert time.monotonic() < deadline, out.text[-4000:]
            time.sleep(1)
        processes = psutil.Process(up.pid).children(recursive=True)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=180) == 0, out.text[-4000:]
    finally:
        if up.poll() is None:
            up.kill()
    time.sleep(0.5)
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"left running: {[p.cmdline() for p in left]}"
    assert not (home / "pgdata" / "postmaster.pid").exists()
