"""Sends the outbox (``alert_deliveries``): at least once, in order per group, with backoff.

A delivery is claimed by pushing its next attempt a lease ahead, then sent
outside any transaction; success or failure is written after. A process that
dies mid-send leaves the claim to expire, and the delivery is sent again.
Within one receiver's group only the oldest pending delivery is sent, so a
"resolved" never overtakes the "firing" it resolves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from alerting.metrics import AlertMetrics
from alerting.notify import DeliveryFailed, Notifier
from inferwatch.daemon import Daemon
from inferwatch.leader import Leadership
from inferwatch.store.database import Database

log = logging.getLogger(__name__)

POLL_S = 1.0
BATCH = 32
CONCURRENCY = 8
LEASE = timedelta(seconds=120)  # longer than any notifier's timeout
MAX_ATTEMPTS = 10  # with the backoff below: about 9 minutes of trying
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0

_CLAIM = text(
    """
    UPDATE alert_deliveries AS d
    SET attempts = d.attempts + 1, next_attempt_at = :lease_until
    WHERE d.id IN (
        SELECT c.id FROM alert_deliveries AS c
        WHERE c.state = 'pending' AND c.next_attempt_at <= :now
          AND NOT EXISTS (
              SELECT 1 FROM alert_deliveries AS o
              WHERE o.state = 'pending' AND o.receiver = c.receiver
                AND o.group_key = c.group_key AND o.id < c.id
          )
        ORDER BY c.id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.id, d.receiver, d.payload, d.attempts
    """
)


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_FIRST_S * 2 ** (attempts - 1), BACKOFF_MAX_S))


class Deliverer(Daemon):
    name = "alert-deliverer"

    def __init__(
        self,
        db: Database,
        notifiers: Mapping[str, Notifier],
        metrics: AlertMetrics,
        leadership: Leadership | None = None,
        *,
        clock: Callable[[], datetime],
        poll_s: float = POLL_S,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        super().__init__()
        self.db, self.notifiers, self.metrics, self.leadership = db, notifiers, metrics, leadership
        self.clock, self.poll_s, self.max_attempts = clock, poll_s, max_attempts
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def run(self) -> None:
        while not self._stopping.is_set():
            sent = 0
            if self.leadership is None or self.leadership.leading:
                try:
                    sent = await self.deliver_due()
                except Exception:
                    log.exception("delivering notifications failed; trying again")
            await self.pause(0 if sent else self.poll_s)

    async def deliver_due(self) -> int:
        """Sends what is due now; returns how many deliveries it tried."""
        now = self.clock()
        async with self.db.async_session() as s:
            claimed = (
                await s.execute(_CLAIM, {"now": now, "lease_until": now + LEASE, "batch": BATCH})
            ).all()
        await asyncio.gather(*(self._deliver(*row) for row in claimed))
        return len(claimed)

    async def _deliver(
        self, id_: int, receiver: str, payload: dict[str, Any], attempts: int
    ) -> None:
        notifier = self.notifiers.get(receiver)
        error: str | None = None
        retry = False
        if notifier is None:
            error = f"receiver {receiver!r} is no longer configured"
        else:
            async with self._slots:
                try:
                    await notifier.send(payload)
                except DeliveryFailed as exc:
                    error, retry = str(exc), exc.retryable
                except Exception as exc:  # a bug in a channel must not stop the others
                    log.exception("notifier %s failed unexpectedly", receiver)
                    error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        if error is None:
            outcome, update = "delivered", {"state": "delivered", "delivered_at": now, "err": None}
        elif retry and attempts < self.max_attempts:
            outcome = "retry"
            update = {"state": "pending", "next": now + backoff(attempts), "err": error}
        else:
            outcome, update = "failed", {"state": "failed", "err": error}
        self.metrics.deliveries.labels(receiver, outcome).inc()
        if error is not None:
            log.warning(
                "notification %d to %s: %s (attempt %d, %s)",
                id_,
                receiver,
                error,
                attempts,
                outcome,
            )
        async with self.db.async_session() as s:
            await s.execute(
                text(
                    """
                    UPDATE alert_deliveries
                    SET state = :state, last_error = :err,
                        delivered_at = COALESCE(:delivered_at, delivered_at),
                        next_attempt_at = COALESCE(:next, next_attempt_at)
                    WHERE id = :id
                    """
                ),
                {"delivered_at": None, "next": None, **update, "id": id_},
            )
