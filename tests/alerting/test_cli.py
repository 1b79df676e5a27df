"""``inferwatch alerts check``, ``status`` and ``silence``, as a user runs them."""

from __future__ import annotations

from pathlib import Path

from inferwatch.store.database import Database
from tests.collector.conftest import rows
from tests.inferwatch.cli_helpers import cli_env, inferwatch


def test_check_lists_the_rules_or_every_problem(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home", COLUMNS="200")
    ok = inferwatch("alerts", "check", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "14 rules, 0 receivers: OK" in ok.stdout
    assert "p95(ttft_ms[5m]) > 500" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: X\n    metric: ttft_ms\n    aggregation: most\n")
    failed = inferwatch("alerts", "check", str(bad), env=env)
    assert failed.returncode == 2
    assert f"{bad}:4: rules[0].aggregation: Input should be" in failed.stderr
    assert f"{bad}:2: rules[0].window: Field required" in failed.stderr


def test_silences_are_added_listed_and_expired(tmp_path: Path, db: Database, db_url: str) -> None:
    env = cli_env(tmp_path / "home", db_url, COLUMNS="200")
    added = inferwatch(
        "alerts",
        "silence",
        "add",
        "alertname=TTFTHigh",
        'model=~"llama.*"',
        "--duration",
        "2h",
        "--comment",
        "deploying",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    listed = inferwatch("alerts", "silence", "list", env=env)
    assert 'alertname="TTFTHigh" model=~"llama.*"' in listed.stdout
    assert "deploying" in listed.stdout
    assert inferwatch("alerts", "silence", "expire", silence_id, env=env).returncode == 0
    assert "TTFTHigh" not in inferwatch("alerts", "silence", "list", env=env).stdout
    (silence,) = rows(db, "SELECT matchers, ends_at > starts_at AS ok FROM alert_silences")
    assert silence["matchers"][1] == {"name": "model", "op": "=~", "value": "llama.*"}
    assert silence["ok"]

    bad = inferwatch("alerts", "silence", "add", "model~~x", env=env)
    assert bad.returncode == 2 and "is not a matcher" in bad.stderr
    status = inferwatch("alerts", "status", env=env)
    assert status.returncode == 0 and "recent transitions" in status.stdout
