"""Which notifications to send, Alertmanager's semantics, as pure functions of (alerts, log, now).

Routing: an alert walks the route tree depth first; the deepest matching
routes take it (``continue`` lets it match later siblings too). Each route
groups its alerts by ``group_by`` into aggregation groups. A new group is
flushed after ``group_wait``, then every ``group_interval``. A flush notifies
when a firing alert is new to the receiver, when alerts it was told about
resolved (``send_resolved``), or when ``repeat_interval`` passed with alerts
still firing; otherwise it sends nothing (dedup per receiver, group and
state). Silenced alerts are left out. After a flush with nothing firing the
group is forgotten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alerting.rules import (
    DEFAULT_GROUP_BY,
    GROUP_INTERVAL,
    GROUP_WAIT,
    REPEAT_INTERVAL,
    Matcher,
    Receiver,
    Route,
)
from alerting.state import Instance, Phase


@dataclass(frozen=True)
class Policy:
    """A matched route with what it inherited filled in."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and all(
            m.matches(labels) for m in self.matchers
        )


@dataclass(frozen=True)
class Group:
    """An aggregation group and its notification log entry (``alert_groups``)."""

    receiver: str
    key: str
    labels: dict[str, str]
    first_seen_at: datetime
    last_flush_at: datetime | None = None
    last_sent_at: datetime | None = None
    notified_firing: frozenset[str] = frozenset()
    notified_resolved: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Notification:
    receiver: str
    group_key: str
    status: str  # firing | resolved
    payload: dict[str, Any]


@dataclass
class Plan:
    groups: list[Group] = field(default_factory=list)  # to store
    forget: list[Group] = field(default_factory=list)  # to delete
    notifications: list[Notification] = field(default_factory=list)


def _policy(route: Route, parent: Policy) -> Policy:
    return Policy(
        route.receiver or parent.receiver,
        tuple(route.group_by) if route.group_by is not None else parent.group_by,
        route.group_wait if route.group_wait is not None else parent.group_wait,
        route.group_interval if route.group_interval is not None else parent.group_interval,
        route.repeat_interval if route.repeat_interval is not None else parent.repeat_interval,
    )


def routes_for(labels: Mapping[str, str], root: Route) -> list[Policy]:
    """The policies an alert with ``labels`` is notified under (Alertmanager's route matching)."""
    base = Policy("", DEFAULT_GROUP_BY, GROUP_WAIT, GROUP_INTERVAL, REPEAT_INTERVAL)

    def walk(route: Route, parent: Policy) -> list[Policy]:
        policy = _policy(route, parent)
        found: list[Policy] = []
        for child in route.routes:
            if all(m.matches(labels) for m in child.matchers):
                found += walk(child, policy)
                if not child.continue_:
                    break
        return found or [policy]

    return [p for p in walk(root, base) if p.receiver]


def group_key(policy: Policy, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    group_labels = {name: labels.get(name, "") for name in policy.group_by}
    canonical = json.dumps([policy.receiver, sorted(group_labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16], group_labels


def alert_id(instance: Instance) -> str:
    return f"{instance.rule}/{instance.fingerprint}"


def plan(
    instances: Sequence[Instance],
    groups: Sequence[Group],
    route: Route,
    receivers: Mapping[str, Receiver],
    silences: Sequence[Silence],
    now: datetime,
    *,
    external_url: str = "",
) -> Plan:
    """What to notify now, given every instance and every group's log entry."""
    known = {(g.receiver, g.key): g for g in groups}
    # (receiver, group key) → the route's policy, the group's labels and its alerts now.
    current: dict[tuple[str, str], tuple[Policy, dict[str, str], list[Instance]]] = {}
    for instance in instances:
        if instance.state is Phase.PENDING:
            continue
        if instance.state is Phase.FIRING and any(s.mutes(instance.labels, now) for s in silences):
            continue
        for policy in routes_for(instance.labels, route):
            key, group_labels = group_key(policy, instance.labels)
            current.setdefault((policy.receiver, key), (policy, group_labels, []))[2].append(
                instance
            )

    out = Plan()
    for ident in sorted(set(known) | set(current)):
        group = known.get(ident)
        if ident in current:
            policy, group_labels, alerts = current[ident]
        else:  # nothing left in it (its alerts expired): flush once more to forget it
            policy = Policy(ident[0], (), timedelta(0), timedelta(0), REPEAT_INTERVAL)
            group_labels, alerts = {}, []
        firing = [a for a in alerts if a.state is Phase.FIRING]
        if group is None:
            if not firing:
                continue  # Alertmanager starts a group only for a firing alert
            group = Group(ident[0], ident[1], group_labels, first_seen_at=now)
        due_at = (
            group.first_seen_at + policy.group_wait
            if group.last_flush_at is None
            else group.last_flush_at + policy.group_interval
        )
        if now < due_at:
            out.groups.append(group)
            continue
        firing_ids = frozenset(alert_id(a) for a in firing)
        resolved = [
            a for a in alerts if a.state is Phase.INACTIVE and alert_id(a) in group.notified_firing
        ]
        resolved_ids = frozenset(alert_id(a) for a in resolved)
        receiver = receivers.get(ident[0])
        send_resolved = receiver is None or receiver.send_resolved
        if _needs_update(group, firing_ids, resolved_ids, send_resolved, policy, now):
            shown = firing + (resolved if send_resolved else [])
            if shown:
                status = "firing" if firing else "resolved"
                payload = webhook_payload(ident[0], group, status, shown, external_url)
                out.notifications.append(Notification(ident[0], ident[1], status, payload))
            group = replace(
                group,
                last_sent_at=now,
                notified_firing=firing_ids,
                notified_resolved=resolved_ids,
            )
        group = replace(group, last_flush_at=now)
        (out.groups if firing_ids else out.forget).append(group)
    return out


def _needs_update(
    group: Group,
    firing: frozenset[str],
    resolved: frozenset[str],
    send_resolved: bool,
    policy: Policy,
    now: datetime,
) -> bool:
    """Alertmanager's DedupStage.needsUpdate."""
    if group.last_sent_at is None:
        return bool(firing)
    if not firing <= group.notified_firing:
        return True
    if not firing:
        return bool(group.notified_firing)
    if send_resolved and not resolved <= group.notified_resolved:
        return True
    return group.last_sent_at + policy.repeat_interval <= now


def _iso(moment: datetime | None) -> str:
    return "0001-01-01T00:00:00Z" if moment is None else moment.isoformat()


def webhook_payload(
    receiver: str, group: Group, status: str, alerts: Sequence[Instance], external_url: str
) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4: what every existing receiver reads."""
    entries = [
        {
            "status": "firing" if a.state is Phase.FIRING else "resolved",
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": _iso(a.fired_at or a.active_since),
            "endsAt": _iso(a.resolved_at if a.state is not Phase.FIRING else None),
            "generatorURL": f"{external_url}/alerts" if external_url else "",
            "fingerprint": a.fingerprint,
        }
        for a in alerts
    ]
    common_labels = _common([a.labels for a in alerts])
    return {
        "version": "4",
        "groupKey": f"{receiver}:{json.dumps(group.labels, sort_keys=True)}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group.labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "alerts": entries,
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}
