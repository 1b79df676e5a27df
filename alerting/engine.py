"""The alert engine's I/O shell: measure each due rule, run the pure core, write the outcome.

One tick reads every due rule's values (each in its own short read-only
transaction with a statement timeout: a slow or failing rule skips this tick
and leaves its alerts as they were), then in **one transaction** under an
advisory transaction lock loads the stored states, applies ``state.evaluate``
and ``dispatch.plan``, and writes states, transitions, notification groups
and the notifications to send (the outbox). A restart therefore neither
re-fires nor forgets an alert, and two engines cannot both notify. The
``Deliverer`` sends the outbox separately, so a slow receiver never delays
evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from alerting.dispatch import Group, Notification, Silence, plan
from alerting.metrics import AlertMetrics
from alerting.query import Sample, measure
from alerting.rules import AlertConfig, Matcher, Rule
from alerting.state import (
    RESOLVED_RETENTION,
    Instance,
    Phase,
    Transition,
    evaluate,
)
from inferwatch.daemon import Daemon
from inferwatch.leader import ALERT_WRITES, Leadership
from inferwatch.store.database import Database
from inferwatch.store.models import (
    AlertDelivery,
    AlertEvent,
    AlertGroup,
    AlertSilence,
    AlertState,
)

log = logging.getLogger(__name__)

INTERVAL_S = 15.0
QUERY_TIMEOUT_S = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def _instance(row: AlertState) -> Instance:
    return Instance(
        rule=row.rule,
        fingerprint=row.fingerprint,
        labels=dict(row.labels),
        annotations=dict(row.annotations),
        state=Phase(row.state),
        value=row.value,
        evaluated_at=row.evaluated_at,
        active_since=row.active_since,
        fired_at=row.fired_at,
        last_true_at=row.last_true_at,
        resolved_at=row.resolved_at,
    )


def _group(row: AlertGroup) -> Group:
    return Group(
        receiver=row.receiver,
        key=row.group_key,
        labels=dict(row.group_labels),
        first_seen_at=row.first_seen_at,
        last_flush_at=row.last_flush_at,
        last_sent_at=row.last_sent_at,
        notified_firing=frozenset(row.notified_firing),
        notified_resolved=frozenset(row.notified_resolved),
    )


def silence_of(row: AlertSilence) -> Silence:
    matchers = tuple(Matcher(m["name"], m["op"], m["value"]) for m in row.matchers)
    return Silence(row.id, matchers, row.starts_at, row.ends_at)


class AlertEngine(Daemon):
    name = "alert-engine"

    def __init__(
        self,
        db: Database,
        config: AlertConfig,
        metrics: AlertMetrics,
        leadership: Leadership | None = None,
        *,
        interval_s: float = INTERVAL_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
        external_url: str = "",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.db, self.config, self.metrics, self.leadership = db, config, metrics, leadership
        self.interval = timedelta(seconds=interval_s)
        self.query_timeout_s = query_timeout_s
        self.external_url = external_url
        self.clock = clock
        self.last_evaluated: dict[str, datetime] = {}
        # What /metrics shows: the last values per rule and the current instances.
        self.values: dict[str, list[Sample]] = {}
        self.instances: list[Instance] = []

    async def run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            leading = self.leadership is None or self.leadership.leading
            self.metrics.leader.set(1 if leading else 0)
            if leading:
                try:
                    await self.tick(self.clock())
                except Exception:
                    log.exception("alert evaluation failed; trying again next interval")
                    self.metrics.ticks_failed.inc()
            await self.pause(self.interval.total_seconds() - (time.monotonic() - started))

    def due(self, now: datetime) -> list[Rule]:
        return [
            rule
            for rule in self.config.rules
            if (last := self.last_evaluated.get(rule.name)) is None
            or now - last >= (rule.interval or self.interval) - timedelta(milliseconds=500)
        ]

    async def _measure(
        self, rules: Sequence[Rule], now: datetime
    ) -> dict[str, tuple[list[Sample], bool]]:
        measured: dict[str, tuple[list[Sample], bool]] = {}
        timeout = f"{int(self.query_timeout_s * 1000)}ms"
        async with self.db.async_engine.connect() as conn:
            for rule in rules:
                started = time.perf_counter()
                try:
                    async with conn.begin():
                        await conn.execute(text("SET TRANSACTION READ ONLY"))
                        await conn.execute(
                            select(func.set_config("statement_timeout", timeout, True))
                        )
                        samples = await measure(conn, rule, rule.group_by, now)
                        holds = True
                        for cond in rule.while_:
                            values = await measure(conn, cond, [], now)
                            holds = holds and any(cond.breached(v.value) for v in values)
                except SQLAlchemyError as exc:
                    log.warning("rule %s: its query failed, state kept: %s", rule.name, exc)
                    self.metrics.evaluations.labels(rule.name, "error").inc()
                    continue
                self.metrics.evaluations.labels(rule.name, "ok").inc()
                self.metrics.evaluation_seconds.observe(time.perf_counter() - started)
                measured[rule.name] = (samples, holds)
        return measured

    async def tick(self, now: datetime) -> list[Transition]:
        """One evaluation of every due rule at ``now``; returns the transitions made."""
        rules = self.due(now)
        measured = await self._measure(rules, now)
        by_name = {rule.name: rule for rule in self.config.rules}
        transitions: list[Transition] = []
        async with self.db.async_session() as s:
            await s.execute(select(func.pg_advisory_xact_lock(ALERT_WRITES)))
            stored = [_instance(r) for r in (await s.scalars(select(AlertState))).all()]
            current: list[Instance] = []
            for rule_name in {i.rule for i in stored} | set(measured):
                before = {i.fingerprint: i for i in stored if i.rule == rule_name}
                rule = by_name.get(rule_name)
                if rule is None:  # the rule was removed: its alerts resolve
                    after, made = _retire(before.values(), now)
                elif rule_name in measured:
                    samples, holds = measured[rule_name]
                    after, made = evaluate(rule, samples, holds, before, now)
                else:
                    after, made = list(before.values()), []
                current += after
                transitions += made
                await _write_rule(s, rule_name, before, after, made)
            groups = [_group(g) for g in (await s.scalars(select(AlertGroup))).all()]
            silences = [
                silence_of(row)
                for row in (
                    await s.scalars(
                        select(AlertSilence).where(
                            AlertSilence.starts_at <= now, AlertSilence.ends_at > now
                        )
                    )
                ).all()
            ]
            decided = plan(
                current,
                groups,
                self.config.route,
                self.config.receivers,
                silences,
                now,
                external_url=self.external_url,
            )
            await _write_plan(s, decided.groups, decided.forget, decided.notifications, now)
        for rule in rules:
            if rule.name in measured:
                self.last_evaluated[rule.name] = now
                self.values[rule.name] = measured[rule.name][0]
        self.instances = current
        for t in transitions:
            log.info(
                "%s %s: %s → %s (value %s)", t.rule, t.labels, t.from_state, t.to_state, t.value
            )
        for n in decided.notifications:
            self.metrics.notifications_queued.labels(n.receiver, n.status).inc()
        return transitions


def _retire(
    instances: Iterable[Instance], now: datetime
) -> tuple[list[Instance], list[Transition]]:
    """A removed rule's alerts resolve, and go once their resolution could be notified."""
    after, made = [], []
    for i in instances:
        if i.state is Phase.INACTIVE:
            if i.resolved_at is not None and now - i.resolved_at < RESOLVED_RETENTION:
                after.append(i)
            continue
        after.append(
            Instance(
                **{**asdict(i), "state": Phase.INACTIVE, "resolved_at": now, "evaluated_at": now}
            )
        )
        made.append(Transition(now, i.rule, i.fingerprint, i.labels, i.state, Phase.INACTIVE, None))
    return after, made


async def _write_rule(
    s: AsyncSession,
    rule: str,
    before: dict[str, Instance],
    after: list[Instance],
    transitions: list[Transition],
) -> None:
    kept = {i.fingerprint for i in after}
    gone = [fp for fp in before if fp not in kept]
    if gone:
        await s.execute(
            delete(AlertState).where(AlertState.rule == rule, AlertState.fingerprint.in_(gone))
        )
    rows = [{**asdict(i), "state": i.state.value} for i in after]
    await _upsert(s, AlertState, rows, "pk_alert_states", ("rule", "fingerprint"))
    if transitions:
        await s.execute(
            insert(AlertEvent).values(
                [
                    {
                        "at": t.at,
                        "rule": t.rule,
                        "fingerprint": t.fingerprint,
                        "labels": t.labels,
                        "from_state": t.from_state.value,
                        "to_state": t.to_state.value,
                        "value": t.value,
                    }
                    for t in transitions
                ]
            )
        )


async def _write_plan(
    s: AsyncSession,
    groups: Sequence[Group],
    forget: Sequence[Group],
    notifications: Sequence[Notification],
    now: datetime,
) -> None:
    for g in forget:
        await s.execute(
            delete(AlertGroup).where(
                AlertGroup.receiver == g.receiver, AlertGroup.group_key == g.key
            )
        )
    rows = [
        {
            "receiver": g.receiver,
            "group_key": g.key,
            "group_labels": g.labels,
            "first_seen_at": g.first_seen_at,
            "last_flush_at": g.last_flush_at,
            "last_sent_at": g.last_sent_at,
            "notified_firing": sorted(g.notified_firing),
            "notified_resolved": sorted(g.notified_resolved),
        }
        for g in groups
    ]
    await _upsert(s, AlertGroup, rows, "pk_alert_groups", ("receiver", "group_key"))
    if notifications:
        await s.execute(
            insert(AlertDelivery).values(
                [
                    {
                        "receiver": n.receiver,
                        "group_key": n.group_key,
                        "status": n.status,
                        "payload": n.payload,
                        "created_at": now,
                        "next_attempt_at": now,
                    }
                    for n in notifications
                ]
            )
        )


async def _upsert(
    s: AsyncSession, model: Any, rows: list[dict[str, Any]], constraint: str, key: tuple[str, ...]
) -> None:
    """Insert ``rows``, or update every non-key column of those already there."""
    if not rows:
        return
    stmt = insert(model).values(rows)
    await s.execute(
        stmt.on_conflict_do_update(
            constraint=constraint,
            set_={c: stmt.excluded[c] for c in rows[0] if c not in key},
        )
    )
