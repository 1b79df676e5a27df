"""The README's first command, with the real model: `inferwatch up` on a fresh home serves
SmolLM2 on vLLM CPU, a request through the gateway lands in SQL, and Ctrl-C stops it all.

Marked e2e (needs `scripts/install-cpu.sh`); the prepared model is reused from
``INFERWATCH_E2E_HOME`` to save its preparation, the database is new."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from tests.e2e import E2E
from tests.inferwatch.cli_helpers import free_port, inferwatch
from tests.inferwatch.test_up import assert_all_stopped, start_up, up_env

pytestmark = E2E


def test_up_serves_the_default_model_into_sql(tmp_path: Path) -> None:
    import openai

    from serving.model import prepare_default_model

    models_home = Path(os.environ.get("INFERWATCH_E2E_HOME") or tmp_path / "models")
    model = prepare_default_model(models_home)
    home = tmp_path / "home"
    gateway_port = free_port()
    env = up_env(
        home,
        model,
        gateway_port,
        INFERWATCH_SERVING__SERVED_MODEL_NAME="smol",
        INFERWATCH_SERVING__VLLM_MAX_MODEL_LEN="1024",
    )
    up, out = start_up(env)
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
    assert_all_stopped(processes, home)
