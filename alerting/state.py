"""The alert state machine (Prometheus' semantics): pure functions of (rule, values, before, now).

Each rule instance (the rule and one label set) moves
inactive → pending (condition true) → firing (true for ``for``) → inactive
(resolved: condition false for longer than ``keep_firing_for``). A pending
instance whose condition clears goes back to inactive without firing. With no
data, ``no_data`` decides: ``ok`` (condition false), ``alert`` (true) or
``keep_state`` (nothing changes). A resolved instance is kept
``RESOLVED_RETENTION`` so its resolution can still be notified, then dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from alerting.query import LabelSet, Sample
from alerting.rules import Rule, render

RESOLVED_RETENTION = timedelta(minutes=15)  # as Prometheus keeps resolved alerts


class Phase(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class Instance:
    """One rule instance's state, as stored in ``alert_states``."""

    rule: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: Phase
    value: float | None
    evaluated_at: datetime
    active_since: datetime | None = None
    fired_at: datetime | None = None
    last_true_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Transition:
    at: datetime
    rule: str
    fingerprint: str
    labels: dict[str, str]
    from_state: Phase
    to_state: Phase
    value: float | None


@dataclass(frozen=True)
class Observation:
    """What one evaluation saw for one instance: true, false, or unknown (keep state)."""

    holds: bool | None
    value: float | None


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set (Alertmanager fingerprints alerts by their labels)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def alert_labels(rule: Rule, group: LabelSet) -> dict[str, str]:
    return {**dict(group), **rule.labels, "alertname": rule.name, "severity": rule.severity}


def step(
    rule: Rule, previous: Instance, seen: Observation, now: datetime
) -> tuple[Instance, Transition | None]:
    """The next state of one instance after one evaluation."""
    if seen.holds is None:  # no data, keep_state: the value is unknown, nothing moves
        return replace(previous, evaluated_at=now), None
    state, changes = previous.state, dict[str, Any]()
    if seen.holds:
        if state is Phase.INACTIVE:
            state = Phase.PENDING
            changes = {"active_since": now, "fired_at": None, "resolved_at": None}
        active_since = changes.get("active_since", previous.active_since) or now
        if state is Phase.PENDING and now - active_since >= rule.for_:
            state = Phase.FIRING
            changes["fired_at"] = now
        changes["last_true_at"] = now
    elif state is Phase.PENDING:
        state = Phase.INACTIVE
        changes = {"active_since": None}
    elif state is Phase.FIRING:
        last_true = previous.last_true_at or now
        if now - last_true >= rule.keep_firing_for:
            state = Phase.INACTIVE
            changes = {"active_since": None, "resolved_at": now}
    annotations = {
        key: render(template, seen.value, rule.threshold, previous.labels)
        for key, template in rule.annotations.items()
    }
    nxt = replace(
        previous,
        state=state,
        value=seen.value,
        evaluated_at=now,
        annotations={**annotations, "value": _num(seen.value), "threshold": _num(rule.threshold)},
        **changes,
    )
    if state is previous.state:
        return nxt, None
    transition = Transition(
        now, rule.name, previous.fingerprint, previous.labels, previous.state, state, seen.value
    )
    return nxt, transition


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def evaluate(
    rule: Rule,
    samples: list[Sample],
    while_holds: bool,
    previous: Mapping[str, Instance],
    now: datetime,
) -> tuple[list[Instance], list[Transition]]:
    """Every instance of ``rule`` after one evaluation, and the transitions it made.

    ``samples`` are the rule's values per label set (empty: no data at all);
    ``while_holds`` says whether the rule's ``while`` conditions all hold.
    Instances known before but absent now count as no data, except that
    counts, sums and rates of nothing are 0."""
    seen: dict[str, tuple[dict[str, str], Observation]] = {}
    for sample in samples:
        labels = alert_labels(rule, sample.labels)
        holds = rule.breached(sample.value) and while_holds
        seen[fingerprint(labels)] = (labels, Observation(holds, sample.value))

    no_data = {"ok": Observation(False, None), "alert": Observation(True, None)}.get(
        rule.no_data, Observation(None, None)
    )
    for fp, instance in previous.items():
        if fp not in seen:
            if rule.zero_when_empty:
                holds = rule.breached(0.0) and while_holds
                seen[fp] = (instance.labels, Observation(holds, 0.0))
            else:
                seen[fp] = (instance.labels, no_data)
    if not samples and not rule.group_by and no_data.holds:
        labels = alert_labels(rule, ())
        seen.setdefault(fingerprint(labels), (labels, no_data))

    instances, transitions = [], []
    for fp, (labels, observation) in seen.items():
        before = previous.get(fp) or Instance(rule.name, fp, labels, {}, Phase.INACTIVE, None, now)
        if before.state is Phase.INACTIVE and not observation.holds:
            # Nothing to start; keep a resolved instance until its retention ends.
            if before.resolved_at is not None and now - before.resolved_at < RESOLVED_RETENTION:
                instances.append(replace(before, evaluated_at=now, value=observation.value))
            continue
        nxt, transition = step(rule, before, observation, now)
        instances.append(nxt)
        if transition is not None:
            transitions.append(transition)
    return instances, transitions
