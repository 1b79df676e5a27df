"""Rule files: the shipped pack is valid, user files override it, every mistake names its line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alerting.rules import ConfigError, Matcher, load_config, parse_duration, render


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(*paths: Path, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(list(paths), **kw)  # type: ignore[arg-type]
    return caught.value.problems


def test_the_default_pack_covers_the_seed_checklist() -> None:
    config = load_config([])
    names = {rule.name for rule in config.rules}
    assert {
        "TTFTHigh",
        "LatencyHigh",
        "ErrorRateHigh",
        "TimeoutRateHigh",
        "GPUSaturated",
        "GPUUnderBatched",
        "GPUMemoryFull",
        "QueueBuildingUp",
        "KVCacheFull",
        "SpecDecodeAcceptanceLow",
        "ToxicityRateHigh",
        "HallucinationRiskHigh",
        "NegativeFeedbackHigh",
        "CostOverBudget",
    } == names
    ttft = next(r for r in config.rules if r.name == "TTFTHigh")
    assert (ttft.metric, ttft.aggregation, ttft.threshold) == ("ttft_ms", "p95", 500)
    assert ttft.for_ == timedelta(minutes=5)
    under = next(r for r in config.rules if r.name == "GPUUnderBatched")
    assert under.while_[0].metric == "engine_requests_waiting"
    assert config.receivers == {}


def test_a_user_rule_replaces_the_shipped_one_of_the_same_name_and_can_turn_it_off(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """
rules:
  - name: TTFTHigh
    metric: ttft_ms
    aggregation: p99
    window: 1m
    comparison: ">"
    threshold: 250
  - name: CostOverBudget
    metric: cost_usd
    aggregation: sum
    window: 1h
    comparison: ">"
    threshold: 1
    enabled: false
""",
    )
    rules = {r.name: r for r in load_config([path]).rules}
    assert rules["TTFTHigh"].threshold == 250
    assert rules["TTFTHigh"].aggregation == "p99"
    assert "CostOverBudget" not in rules
    assert "ErrorRateHigh" in rules


def test_receivers_and_routes_read_secrets_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
receivers:
  - name: ops
    slack: {url: "${SLACK_URL}"}
  - name: pager
    pagerduty: {routing_key: "${PD_KEY}"}
route:
  receiver: ops
  group_by: [alertname, model]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
""",
    )
    env = {"SLACK_URL": "https://hooks.slack.example/T1", "PD_KEY": "abc123"}
    config = load_config([path], defaults=False, environ=env)
    assert config.receivers["ops"].slack is not None
    assert config.receivers["ops"].slack.url == "https://hooks.slack.example/T1"
    pager = config.receivers["pager"].pagerduty
    assert pager is not None and pager.routing_key.get_secret_value() == "abc123"
    assert config.route.group_wait == timedelta(seconds=10)
    assert config.route.routes[0].matchers == [Matcher("severity", "=", "critical")]
    assert config.route.routes[0].continue_

    missing = problems(path, defaults=False, environ={"SLACK_URL": "https://x"})
    assert missing == [
        f"{path}:6: receivers[1].pagerduty.routing_key: environment variable PD_KEY is not set"
    ]


def test_every_mistake_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """rules:
  - name: Fine
    metric: errors
    aggregation: ratio
    window: 5m
    comparison: ">"
    threshold: 0.01
  - name: BadOne
    metric: ttft_ms
    aggregation: ratio
    window: five minutes
    comparison: "=>"
    threshold: 1
    group_by: [gpu]
  - name: Fine
    metric: nonsense_ms
    aggregation: avg
    window: 1m
    comparison: ">"
    threshold: 1
    colour: red
""",
    )
    found = problems(path)
    assert (
        f"{path}:11: rules[1].window: Value error, 'five minutes' is not a duration: "
        "write it like 30s, 5m, 1h30m or 2d" in found
    )
    assert any(p.startswith(f"{path}:12: rules[1].comparison: Input should be '>'") for p in found)
    assert f"{path}:21: rules[2].colour: Extra inputs are not permitted" in found
    assert len(found) == 3  # shape errors first; meaning is checked once the shape is right

    path = write(
        tmp_path,
        """rules:
  - name: BadOne
    metric: ttft_ms
    aggregation: ratio
    window: 5m
    comparison: ">"
    threshold: 1
    group_by: [gpu]
    filters: {colour: red}
    annotations:
      summary: "{{ value }} on {{ labels.model }} by {{ whom }}"
  - name: BadOne
    metric: nonsense_ms
    aggregation: avg
    window: 1m
    comparison: ">"
    threshold: 1
""",
    )
    found = problems(path)
    assert found == [
        f"{path}:4: rules[0].aggregation: ttft_ms is a number metric: aggregate it with "
        "avg, count, max, min, p50, p90, p95, p99, rate, sum",
        f"{path}:9: rules[0].filters.colour: ttft_ms has no label 'colour'; "
        "it has: model, operation, service",
        f"{path}:8: rules[0].group_by[0]: ttft_ms has no label 'gpu'; "
        "it has: model, operation, service",
        f"{path}:11: rules[0].annotations.summary: unknown placeholder 'whom': "
        "use value, threshold or labels.NAME",
        f"{path}:13: rules[1].metric: unknown metric 'nonsense_ms'; known: "
        + found[4].split("known: ")[1],
        f"{path}:12: rules[1].name: rule 'BadOne' is defined twice in this file",
    ]
    assert "ttft_ms" in found[4] and "gpu_utilization_pct" in found[4]


def test_broken_yaml_and_missing_files_are_reported_not_raised(tmp_path: Path) -> None:
    broken = write(tmp_path, "rules:\n  - name: X\n    metric: [unclosed\n", "broken.yaml")
    found = problems(broken, tmp_path / "absent.yaml")
    assert found[0].startswith(f"{broken}:4: not valid YAML")
    assert found[1].startswith(f"{tmp_path / 'absent.yaml'}: cannot read")
    assert problems(write(tmp_path, "- just\n- a list\n", "list.yaml")) == [
        f"{tmp_path / 'list.yaml'}:1: expected a mapping with rules, receivers and route"
    ]


def test_receivers_need_exactly_one_channel_and_routes_known_receivers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """receivers:
  - name: nothing
  - name: mail
    email: {to: [oncall@example.com], from: iw@example.com, smarthost: "mail:25"}
route:
  receiver: mail
  routes:
    - receiver: nobody
""",
    )
    found = problems(path, defaults=False)
    assert found == [
        f"{path}:2: receivers[0]: Value error, a receiver has exactly one of webhook, slack, "
        "email, pagerduty"
    ]
    fixed = path.read_text().replace("  - name: nothing\n", "")
    assert problems(write(tmp_path, fixed), defaults=False) == ["route: unknown receiver 'nobody'"]


def test_durations_matchers_and_templates() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration("0.5s") == timedelta(milliseconds=500)
    assert parse_duration(90) == timedelta(seconds=90)
    for bad in ("", "5 minutes", "-1s", "1x", True):
        with pytest.raises(ValueError):
            parse_duration(bad)

    assert Matcher.parse('model=~"llama.*"').matches({"model": "llama-3"})
    assert not Matcher.parse("model!~llama.*").matches({"model": "llama-3"})
    assert Matcher.parse("severity!=info").matches({})
    with pytest.raises(ValueError, match="bad regular expression"):
        Matcher.parse("model=~(")

    text = "p95 {{ value }} ms on {{ $labels.model }} (max {{threshold}}); {{ labels.none }}."
    assert render(text, 612.345, 500, {"model": "m"}) == "p95 612.3 ms on m (max 500); ."
    assert render("{{ value }}", None, 1, {}) == "no data"


def test_the_docs_list_every_metric_and_every_shipped_rule() -> None:
    from alerting.catalog import METRICS

    docs = (Path(__file__).parents[2] / "docs" / "alerting.md").read_text()
    for name in METRICS:
        assert f"| `{name}` |" in docs, name
    for rule in load_config([]).rules:
        assert f"| `{rule.name}` |" in docs, rule.name
