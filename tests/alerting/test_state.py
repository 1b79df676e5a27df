"""The state machine through long scripted timelines, on a fake clock (pure functions, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alerting.query import Sample
from alerting.rules import Rule
from alerting.state import RESOLVED_RETENTION, Instance, Phase, Transition, evaluate

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)


def rule(**kw: Any) -> Rule:
    fields: dict[str, Any] = {
        "name": "TTFTHigh",
        "metric": "ttft_ms",
        "aggregation": "p95",
        "window": "5m",
        "comparison": ">",
        "threshold": 500,
        "for": "1m",
        "annotations": {"summary": "p95 {{ value }} ms on {{ labels.model }}"},
    }
    return Rule.model_validate({**fields, **kw})


def sample(value: float | None, model: str | None = None, rows: int = 50) -> Sample:
    """A value for the rule's only label set, or for ``model`` when grouped by model."""
    return Sample((("model", model),) if model else (), value, rows)


class Timeline:
    """Feeds one evaluation per step and remembers states and transitions, as the engine would."""

    def __init__(self, r: Rule) -> None:
        self.rule, self.now, self.instances = r, T0, dict[str, Instance]()
        self.transitions: list[Transition] = []

    def step(self, samples: list[Sample], *, while_holds: bool = True) -> set[Phase]:
        self.now += STEP
        after, made = evaluate(self.rule, samples, while_holds, self.instances, self.now)
        self.instances = {i.fingerprint: i for i in after}
        self.transitions += made
        return {i.state for i in after}

    def run(self, values: Sequence[float | None]) -> list[str]:
        """One step per value (``None``: no data); the state after each, as letters."""
        letters = {Phase.INACTIVE: "i", Phase.PENDING: "p", Phase.FIRING: "F"}
        out = []
        for v in values:
            states = self.step([] if v is None else [sample(v)])
            out.append("".join(sorted(letters[s] for s in states)) or "-")
        return out

    def path(self) -> list[str]:
        return [f"{t.from_state.value}>{t.to_state.value}" for t in self.transitions]


def test_pending_that_clears_before_for_never_fires() -> None:
    tl = Timeline(rule())
    # for = 1m = 4 steps: three breaches, then fine.
    assert tl.run([600, 700, 800, 100, 100]) == ["p", "p", "p", "i", "-"]
    assert tl.path() == ["inactive>pending", "pending>inactive"]


def test_fires_once_for_has_passed_then_resolves_and_is_kept_for_its_notification() -> None:
    tl = Timeline(rule())
    states = tl.run([600] * 6 + [100])
    assert states == ["p", "p", "p", "p", "F", "F", "i"]
    assert tl.path() == ["inactive>pending", "pending>firing", "firing>inactive"]
    (instance,) = tl.instances.values()
    assert instance.fired_at == T0 + 5 * STEP
    assert instance.active_since is None and instance.resolved_at == T0 + 7 * STEP
    assert instance.labels == {"alertname": "TTFTHigh", "severity": "warning"}
    # The resolved instance stays for its notification, then goes.
    steps_kept = int(RESOLVED_RETENTION / STEP)
    assert tl.run([100] * (steps_kept - 1))[-1] == "i"
    assert tl.run([100]) == ["-"]


def test_annotations_carry_the_value_and_threshold() -> None:
    tl = Timeline(rule(**{"for": "0s", "group_by": ["model"]}))
    tl.step([sample(612.5, "m1")])
    (instance,) = tl.instances.values()
    assert instance.state is Phase.FIRING
    assert instance.annotations == {
        "summary": "p95 612.5 ms on m1",
        "value": "612.5",
        "threshold": "500",
    }


def test_keep_firing_for_rides_out_flapping() -> None:
    tl = Timeline(rule(**{"for": "0s", "keep_firing_for": "45s"}))
    # Flapping every other step stays firing: never 45 s without a breach.
    assert tl.run([600, 100, 600, 100, 100, 600]) == ["F"] * 6
    # Three fine steps in a row (45 s) resolve it.
    assert tl.run([100, 100, 100]) == ["F", "F", "i"]
    assert tl.path() == ["inactive>firing", "firing>inactive"]

    plain = Timeline(rule(**{"for": "0s"}))
    assert plain.run([600, 100, 600]) == ["F", "i", "F"]
    assert plain.path() == ["inactive>firing", "firing>inactive", "inactive>firing"]


def test_no_data_ok_resolves_alert_fires_keep_state_freezes() -> None:
    ok = Timeline(rule(**{"for": "0s"}))
    assert ok.run([600, None]) == ["F", "i"]

    keep = Timeline(rule(**{"for": "30s", "no_data": "keep_state"}))
    assert keep.run([600, None, None, None, 600, 600]) == ["p", "p", "p", "p", "F", "F"]
    assert keep.run([None] * 20) == ["F"] * 20  # a firing alert is not forgotten either

    alert = Timeline(rule(**{"for": "30s", "no_data": "alert"}))
    assert alert.run([None, None, None]) == ["p", "p", "F"]
    (instance,) = alert.instances.values()
    assert instance.labels == {"alertname": "TTFTHigh", "severity": "warning"}
    assert instance.annotations["summary"] == "p95 no data ms on "
    assert alert.run([100]) == ["i"]  # data is back, and fine


def test_each_label_set_is_its_own_alert() -> None:
    tl = Timeline(rule(**{"for": "0s", "group_by": ["model"]}))
    assert tl.step([sample(600, "a"), sample(100, "b")]) == {Phase.FIRING}
    assert tl.step([sample(600, "a"), sample(900, "b")]) == {Phase.FIRING}
    assert len(tl.instances) == 2
    assert tl.step([sample(100, "a"), sample(900, "b")]) == {Phase.FIRING, Phase.INACTIVE}
    firing = [i.labels["model"] for i in tl.instances.values() if i.state is Phase.FIRING]
    assert firing == ["b"]


def test_counts_of_nothing_are_zero_not_no_data() -> None:
    errors = rule(
        name="TooFewRequests",
        metric="requests",
        aggregation="count",
        comparison="<",
        threshold=1,
        **{"for": "0s"},
    )
    tl = Timeline(errors)
    # The engine's query gives one row even with no rows; here: none at all, so 0.
    assert tl.step([sample(0.0)]) == {Phase.FIRING}
    assert tl.step([]) == {Phase.FIRING}  # zero-filled, still firing
    assert tl.step([sample(3.0)]) == {Phase.INACTIVE}


def test_while_conditions_gate_the_rule() -> None:
    under = rule(
        name="GPUUnderBatched",
        metric="gpu_utilization_pct",
        aggregation="avg",
        comparison="<",
        threshold=30,
        **{"for": "0s"},
    )
    tl = Timeline(under)
    assert tl.step([sample(10)], while_holds=False) == set()
    assert tl.step([sample(10)], while_holds=True) == {Phase.FIRING}
    assert tl.step([sample(10)], while_holds=False) == {Phase.INACTIVE}


def test_a_restart_in_the_middle_continues_from_the_stored_state() -> None:
    before = Timeline(rule())
    before.run([600, 600])
    # A new engine knows only what was stored: the instances (the engine test does
    # this through Postgres). The pending timer keeps counting from active_since.
    after = Timeline(rule())
    after.now, after.instances = before.now + timedelta(seconds=20), dict(before.instances)
    assert after.run([600, 600]) == ["p", "F"]
    assert after.path() == ["pending>firing"]
