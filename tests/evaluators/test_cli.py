"""``inferwatch evaluators list|score`` as a user runs them, and the evaluator process live."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from evaluators.app import create_app
from evaluators.toxicity import ToxicityEvaluator
from inferwatch.settings import EvaluatorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import rows, wait_for
from tests.evaluators.test_worker import seed
from tests.inferwatch.cli_helpers import cli_env, inferwatch
from tests.servers import ServerThread


def test_list_says_what_runs_here(tmp_path: Path) -> None:
    listed = inferwatch("evaluators", "list", env=cli_env(tmp_path, COLUMNS="200"))
    assert listed.returncode == 0, listed.stderr
    assert "toxicity" in listed.stdout and "available" in listed.stdout


def test_score_writes_each_record_back_with_its_score(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": 1, "completion": "You are a pathetic idiot."})
        + "\n\n"
        + json.dumps({"id": 2, "completion": "The train leaves at nine."})
        + "\n"
    )
    scored = tmp_path / "out.jsonl"
    done = inferwatch(
        "evaluators", "score", "--evaluator", "toxicity", "--input", str(source),
        "--output", str(scored), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "scored 2 records with toxicity 1" in done.stderr
    lines = [json.loads(line) for line in scored.read_text().splitlines()]
    assert [(r["id"], r["label"], r["flagged"]) for r in lines] == [
        (1, "toxic", True),
        (2, "ok", False),
    ]
    assert lines[0]["completion"] == "You are a pathetic idiot."
    assert [e["model"] for e in lines[0]["evidence"]] == ["explicit", "implicit"]

    source.write_text('{"completion": "fine"}\n{"completion": 3}\n')
    bad = inferwatch(
        "evaluators", "score", "--evaluator", "toxicity", "--input", str(source), env=env
    )
    assert bad.returncode == 2 and f"{source}:2: completion must be a string" in bad.stderr
    source.write_text('{"prompt": "only a prompt"}\n')
    bad = inferwatch(
        "evaluators", "score", "--evaluator", "toxicity", "--input", str(source), env=env
    )
    assert bad.returncode == 2 and f"{source}:1: toxicity needs completion" in bad.stderr
    unknown = inferwatch(
        "evaluators", "score", "--evaluator", "nope", "--input", str(source), env=env
    )
    assert unknown.returncode == 2 and "unknown evaluator 'nope'" in unknown.stderr


def test_score_reads_token_logprobs_or_the_gateways_summary(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"completion": "Paris.", "logprobs": [-0.01, -0.2]})
        + "\n"
        + json.dumps({"completion": "Lyon.", "logprobs": {"logprob_mean": -3.0}})
        + "\n"
        + json.dumps({"completion": "Nice.", "logprobs": {"mean": -3.0}})
        + "\n"
    )
    args = ("evaluators", "score", "--evaluator", "hallucination-confidence", "--input")
    bad = inferwatch(*args, str(source), env=env)
    assert bad.returncode == 2
    assert f"{source}:3: unknown log-probability keys ['mean']" in bad.stderr
    source.write_text("\n".join(source.read_text().splitlines()[:2]) + "\n")
    done = inferwatch(*args, str(source), env=env)
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["label"], r["flagged"]) for r in scored] == [("sure", False), ("unsure", True)]
    assert scored[0]["evidence"][0]["logprob_tokens"] == 2


def test_the_running_process_scores_new_requests(db: Database) -> None:
    traces = seed(db, ["Nice to meet you.", "Go to hell, you idiot."])
    settings = EvaluatorSettings(poll_s=0.2)
    # A clock past the settling time: the new spans count as settled at once.
    app = create_app(
        settings, [ToxicityEvaluator()], db, clock=lambda: datetime.now(UTC) + timedelta(seconds=15)
    )
    with ServerThread(app) as url:
        wait_for(lambda: len(rows(db, "SELECT 1 FROM evaluations")) == 2, timeout=30)
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["evaluators"] == ["toxicity"] and ready["sampling"] is True
        metrics = httpx.get(f"{url}/metrics").text
        assert (
            'inferwatch_evaluators_jobs_total{evaluator="toxicity",outcome="done"} 2.0' in metrics
        )
    flagged = rows(db, "SELECT trace_id, flagged FROM evaluations ORDER BY flagged")
    assert [(r["trace_id"], r["flagged"]) for r in flagged] == [
        (traces[0], False),
        (traces[1], True),
    ]
