"""Grouping, dedup, repeats, resolutions and silences, as Alertmanager does them (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alerting.dispatch import Group, Notification, Silence, plan, routes_for
from alerting.rules import Matcher, Receiver, Route
from alerting.state import Instance, Phase, fingerprint

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
RECEIVERS = {
    "ops": Receiver.model_validate({"name": "ops", "webhook": {"url": "http://x/"}}),
    "pager": Receiver.model_validate({"name": "pager", "webhook": {"url": "http://y/"}}),
    "quiet": Receiver.model_validate(
        {"name": "quiet", "send_resolved": False, "webhook": {"url": "http://z/"}}
    ),
}


def alert(name: str, state: Phase, **labels: str) -> Instance:
    full = {**labels, "alertname": name, "severity": labels.get("severity", "warning")}
    return Instance(
        name,
        fingerprint(full),
        full,
        {"summary": f"{name} {labels}"},
        state,
        1.0,
        T0,
        fired_at=T0 if state is Phase.FIRING else None,
        resolved_at=T0 if state is Phase.INACTIVE else None,
    )


class Dispatcher:
    """Keeps the notification log between flushes, as the engine does in Postgres."""

    def __init__(self, route: dict[str, Any], receivers: dict[str, Receiver] = RECEIVERS) -> None:
        self.route = Route.model_validate(route)
        self.receivers = receivers
        self.groups: list[Group] = []
        self.sent: list[Notification] = []

    def at(
        self,
        seconds: float,
        alerts: list[Instance],
        silences: list[Silence] = (),  # type: ignore[assignment]
    ) -> list[Notification]:
        out = plan(alerts, self.groups, self.route, self.receivers, silences, T0 + seconds * S)
        self.groups = out.groups
        self.sent += out.notifications
        return out.notifications


def summary(notes: list[Notification]) -> list[tuple[str, str, list[tuple[str, str]]]]:
    return [
        (
            n.receiver,
            n.status,
            sorted((a["labels"]["alertname"], a["status"]) for a in n.payload["alerts"]),
        )
        for n in notes
    ]


# One group for everything (group_by: []), Alertmanager's default timings.
ROUTE = {
    "receiver": "ops",
    "group_by": [],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
}


def test_group_wait_batches_then_group_interval_then_resolved_once() -> None:
    d = Dispatcher(ROUTE)
    a, b = alert("A", Phase.FIRING), alert("B", Phase.FIRING)
    assert d.at(0, [a]) == []  # the group waits 30 s for company
    assert d.at(15, [a]) == []
    assert summary(d.at(30, [a])) == [("ops", "firing", [("A", "firing")])]
    # B joins: told at the next group_interval, not before.
    assert d.at(45, [a, b]) == []
    assert d.at(329, [a, b]) == []
    assert summary(d.at(330, [a, b])) == [("ops", "firing", [("A", "firing"), ("B", "firing")])]
    # Nothing changes: nothing is sent, every interval.
    assert d.at(630, [a, b]) == []
    # Both resolve: one resolved notification at the next flush, then the group is forgotten.
    ra, rb = alert("A", Phase.INACTIVE), alert("B", Phase.INACTIVE)
    assert d.at(700, [ra, rb]) == []
    note = d.at(930, [ra, rb])
    assert summary(note) == [("ops", "resolved", [("A", "resolved"), ("B", "resolved")])]
    assert note[0].payload["alerts"][0]["endsAt"] == T0.isoformat()
    assert d.groups == []
    assert d.at(1230, [ra, rb]) == []


def test_repeat_interval_reminds_while_firing() -> None:
    d = Dispatcher({**ROUTE, "repeat_interval": "1h"})
    a = alert("A", Phase.FIRING)
    d.at(0, [a])
    assert len(d.at(30, [a])) == 1
    reminders = [t for t in range(330, 7300, 300) if d.at(t, [a])]
    assert reminders == [3630, 7230]  # the first flush at least an hour after the last send


def test_fired_and_resolved_between_flushes_is_not_news() -> None:
    d = Dispatcher(ROUTE)
    a, b = alert("A", Phase.FIRING), alert("B", Phase.FIRING)
    d.at(0, [a])
    d.at(30, [a])
    # B fires and resolves between two flushes; A keeps firing: nothing new to say.
    d.at(60, [a, b])
    assert d.at(330, [a, alert("B", Phase.INACTIVE)]) == []


def test_group_by_splits_groups_and_the_payload_is_alertmanagers() -> None:
    d = Dispatcher({**ROUTE, "group_by": ["alertname", "model"]})
    x, y = alert("A", Phase.FIRING, model="x"), alert("A", Phase.FIRING, model="y")
    d.at(0, [x, y])
    notes = d.at(30, [x, y])
    assert len(notes) == 2
    payload = min(notes, key=lambda n: n.payload["groupLabels"]["model"]).payload
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "ops"
    assert payload["groupLabels"] == {"alertname": "A", "model": "x"}
    assert payload["commonLabels"] == {"alertname": "A", "model": "x", "severity": "warning"}
    assert payload["alerts"][0]["fingerprint"] == x.fingerprint
    assert payload["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert set(payload) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }


def test_routes_match_depth_first_and_continue_fans_out() -> None:
    route = Route.model_validate(
        {
            "receiver": "ops",
            "group_by": ["alertname"],
            "routes": [
                {"matchers": ["severity=critical"], "receiver": "pager", "continue": True},
                {"matchers": ['model=~"big-.*"'], "receiver": "quiet", "group_wait": "0s"},
                {"matchers": ["model=never"], "receiver": "pager"},
            ],
        }
    )
    assert [p.receiver for p in routes_for({"severity": "warning"}, route)] == ["ops"]
    assert [p.receiver for p in routes_for({"severity": "critical"}, route)] == ["pager"]
    both = routes_for({"severity": "critical", "model": "big-1"}, route)
    assert [p.receiver for p in both] == ["pager", "quiet"]
    assert both[1].group_wait == timedelta(0) and both[0].group_by == ("alertname",)


def test_send_resolved_false_sends_no_resolution() -> None:
    d = Dispatcher({**ROUTE, "receiver": "quiet"})
    a = alert("A", Phase.FIRING)
    d.at(0, [a])
    assert len(d.at(30, [a])) == 1
    assert d.at(330, [alert("A", Phase.INACTIVE)]) == []
    assert d.groups == []  # still forgotten: a later firing is news again
    d.at(400, [a])
    assert len(d.at(430, [a])) == 1


def test_silences_hold_back_matching_alerts_while_they_last() -> None:
    d = Dispatcher(ROUTE)
    a, b = alert("A", Phase.FIRING, model="x"), alert("B", Phase.FIRING, model="y")
    silence = Silence(1, (Matcher("model", "=", "x"),), T0, T0 + 600 * S)
    d.at(0, [a, b], [silence])
    assert summary(d.at(30, [a, b], [silence])) == [("ops", "firing", [("B", "firing")])]
    assert d.at(330, [a, b], [silence]) == []
    # The silence ended: A is news.
    assert summary(d.at(630, [a, b], [silence])) == [
        ("ops", "firing", [("A", "firing"), ("B", "firing")])
    ]
