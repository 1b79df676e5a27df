"""The README's first command, with the real model: `inferwatch up` on a fresh home serves
SmolLM2 on vLLM CPU, requests through the gateway land in SQL and are scored (toxicity,
token confidence and self-consistency against vLLM itself; grounding and the LLM judge
too for the one with context), a tight alert
rule notifies a webhook, `inferwatch demo` runs with its feedback linked, the dashboard's
Overview shows it all in headless Chromium, and Ctrl-C stops it all; `up` again on the
same home finds the data and does not notify the alert again.

Marked e2e (needs `scripts/install-cpu.sh`); the prepared model is reused from
``INFERWATCH_E2E_HOME`` to save its preparation, the database is new."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.ports import free_port
from tests.alerting.receivers import webhook_recorder, webhook_route
from tests.collector.conftest import wait_for
from tests.e2e import E2E
from tests.inferwatch.cli_helpers import inferwatch
from tests.inferwatch.test_up import Output, assert_all_stopped, start_up, up_env
from tests.servers import ServerThread

pytestmark = E2E

TIGHT_RULE = """
rules:
  - name: Served
    metric: requests
    aggregation: count
    window: 10m
    comparison: ">="
    threshold: 1
    group_by: [model]
"""


def test_up_serves_the_default_model_into_sql(tmp_path: Path) -> None:
    import openai

    from serving.model import prepare_default_model

    models_home = Path(os.environ.get("INFERWATCH_E2E_HOME") or tmp_path / "models")
    model = prepare_default_model(models_home)
    home = tmp_path / "home"
    gateway_port = free_port()
    hook_app, notified = webhook_recorder()
    hook = ServerThread(hook_app)  # a webhook receiver for the alert engine
    hook_url = hook.__enter__()
    rules = tmp_path / "alerts.yaml"
    rules.write_text(TIGHT_RULE + webhook_route(f"{hook_url}/hook"))
    env = up_env(
        home,
        model,
        gateway_port,
        INFERWATCH_SERVING__SERVED_MODEL_NAME="smol",
        INFERWATCH_SERVING__VLLM_MAX_MODEL_LEN="1024",
        INFERWATCH_ALERTING__FILES=json.dumps([str(rules)]),
        INFERWATCH_ALERTING__INTERVAL_S="1",
        INFERWATCH_EVALUATORS__JUDGE="true",  # the LLM judge, against this vLLM
        INFERWATCH_EVALUATORS__CONSISTENCY="true",  # and self-consistency, kept to 2 a minute
        INFERWATCH_EVALUATORS__BUDGETS_PER_MINUTE='{"hallucination-consistency": 2}',
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
        # The evaluator worker scores it (the shipped base rate is every request): toxicity,
        # the confidence in the log-probabilities the gateway recorded, and self-consistency.
        scored = "SELECT evaluator FROM evaluations WHERE trace_id = '{}' ORDER BY 1"
        wanted = ["hallucination-confidence", "hallucination-consistency", "toxicity"]
        deadline = time.monotonic() + 120
        while rows(env, scored.format(trace_id)) != wanted:
            assert time.monotonic() < deadline, out.text[-4000:]
            time.sleep(2)
        # A request with its own context gets grounding and the judge's verdict too; the
        # judge's and self-consistency's calls to vLLM are not traced, so are not requests.
        grounded = client.chat.completions.with_raw_response.create(
            model="smol",
            messages=[
                {"role": "system", "content": "Context: the Eiffel Tower is 330 metres tall."},
                {"role": "user", "content": "How tall is the Eiffel Tower?"},
            ],
            max_tokens=16,
        )
        grounded_id = grounded.headers["x-inferwatch-trace-id"]
        wanted = [
            "hallucination-confidence",
            "hallucination-consistency",
            "hallucination-grounding",
            "hallucination-judge",
            "toxicity",
        ]
        deadline = time.monotonic() + 120
        while rows(env, scored.format(grounded_id)) != wanted:
            assert time.monotonic() < deadline, out.text[-4000:]
            time.sleep(2)
        requests = inferwatch("sql", "SELECT count(*) FROM llm_requests", "-f", "csv", env=env)
        assert requests.stdout.split() == ["count", "2"]
        # The tight rule fires on that request and its notification arrives;
        # every shipped rule was evaluated against the live database without error.
        wait_for(lambda: notified, timeout=60)
        assert notified[0]["status"] == "firing"
        assert notified[0]["alerts"][0]["labels"]["model"] == "smol"
        metrics = httpx.get(f"http://127.0.0.1:{env['INFERWATCH_ALERTING__PORT']}/metrics").text
        assert 'rule_evaluations_total{result="ok",rule="TTFTHigh"}' in metrics
        assert 'result="error"' not in metrics
        # A short demo: its requests land in SQL and its feedback links to them.
        demo = inferwatch(
            "demo", "--duration", "30", "--rate", "0.5", "--max-tokens", "24", "--seed", "1",
            env=env, timeout=300,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert int(count(env, "SELECT count(*) FROM llm_requests")) > 2
        linked = "SELECT count(*) FROM llm_request_feedback"
        deadline = time.monotonic() + 60
        while int(count(env, linked)) == 0:
            assert time.monotonic() < deadline, demo.stdout
            time.sleep(2)
        overview_in_a_browser(f"http://127.0.0.1:{env['INFERWATCH_UI__PORT']}")
        stored = count(env, "SELECT count(*) FROM llm_requests")
        firing = "SELECT fingerprint FROM alert_states WHERE state = 'firing' ORDER BY 1"
        firing_before = rows(env, firing)
        assert firing_before, "the tight rule's alert is firing"
        served_before = served_notifications(notified)
        stop(up, out, home)
        restarted_at = datetime.now(UTC).isoformat()

        # Up again on the same home: the data is still there, the same alerts still fire,
        # none of them went to firing again, and none is notified again.
        up, out = start_up(env)
        out.wait_for("InferWatch is up", timeout=900)
        assert count(env, "SELECT count(*) FROM llm_requests") == stored
        time.sleep(5)  # several evaluations of the rules
        assert rows(env, firing) == firing_before
        refired = rows(
            env,
            "SELECT fingerprint FROM alert_events "
            f"WHERE to_state = 'firing' AND at > '{restarted_at}'",
        )
        assert not set(refired) & set(firing_before), refired
        assert served_notifications(notified) == served_before
        stop(up, out, home)
    finally:
        if up.poll() is None:
            up.kill()
        hook.__exit__(None, None, None)


def stop(up: subprocess.Popen[str], out: Output, home: Path) -> None:
    """Ctrl-C: everything stops, nothing is left running, the database shut down cleanly."""
    processes = psutil.Process(up.pid).children(recursive=True)
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=180) == 0, out.text[-4000:]
    assert_all_stopped(processes, home)


def overview_in_a_browser(dashboard: str) -> None:
    """The dashboard's Overview, in headless Chromium, shows the requests and their scores."""
    from playwright.sync_api import sync_playwright

    from tests.ui.browser import chromium, rendered

    browser_path = chromium()
    assert browser_path is not None, "no chromium on PATH (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1400})
            deadline = time.monotonic() + 60
            while True:  # the rollups take the requests in within seconds
                body = rendered(page, dashboard, ["Request rate", "Flagged: toxicity"])
                rate = re.search(r"([0-9.]+) req/(s|min)", body)
                thumbs = re.search(r"Thumbs up[^%]{0,40}?([0-9.]+) %", body)
                if rate is not None and float(rate.group(1)) > 0 and thumbs is not None:
                    break
                assert time.monotonic() < deadline, body
                time.sleep(2)
            artifacts = os.environ.get("INFERWATCH_ARTIFACTS")
            if artifacts:
                Path(artifacts).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=Path(artifacts) / "e2e-overview.png", full_page=True)
        finally:
            browser.close()


def rows(env: dict[str, str], query: str) -> list[str]:
    """The first column of ``query``'s rows, through `inferwatch sql`."""
    done = inferwatch("sql", query, "-f", "csv", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[1:]


def count(env: dict[str, str], query: str) -> str:
    (value,) = rows(env, query)
    return value


def served_notifications(notified: list[dict[str, Any]]) -> int:
    return sum(any(a["labels"]["alertname"] == "Served" for a in n["alerts"]) for n in notified)
