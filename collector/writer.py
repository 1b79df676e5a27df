"""Group-committed span writes: a request is acknowledged only once its spans are committed.

Requests hand their rows to ``SpanWriter.submit`` and wait. One task drains the
queue: it takes everything waiting (up to ``max_batch_spans``), writes it in a
single transaction (``write_rows``: one binary COPY into ``spans``, or, when
some of the spans are already stored, COPY into a staging table and
``INSERT … ON CONFLICT (trace_id, span_id) DO NOTHING``), commits, and only then
resolves every waiting request. While one group commits the next one gathers,
so concurrent requests share commits instead of queueing for them.

Failures: a lost database fails the whole group with ``WriterUnavailable``
(clients retry; the insert is idempotent, so a retry after a commit whose
acknowledgement was lost changes nothing). A row Postgres refuses (a data
error) makes the writer retry each request of the group alone, then each row
of a failing request alone, so only the offending spans are rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import set_json_dumps

from collector.decode import MAX_ERROR_MESSAGES
from collector.mapping import SpanRow
from collector.metrics import CollectorMetrics
from inferwatch.daemon import Daemon
from inferwatch.settings import CollectorSettings

log = logging.getLogger(__name__)

Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]

RECONNECT_INTERVAL_S = 1.0  # after a failed connect, fail fast for this long
# Postgres refused these rows for their values: isolate them, store the rest.
ROW_ERRORS: tuple[type[psycopg.Error], ...] = (psycopg.DataError, psycopg.IntegrityError)

# The columns the writer fills, in ``SpanRow`` order, with their types for binary COPY.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("trace_id", "text"),
    ("span_id", "text"),
    ("parent_span_id", "text"),
    ("trace_state", "text"),
    ("name", "text"),
    ("kind", "text"),
    ("service_name", "text"),
    ("scope_name", "text"),
    ("scope_version", "text"),
    ("start_time", "timestamptz"),
    ("end_time", "timestamptz"),
    ("start_time_unix_nano", "int8"),
    ("end_time_unix_nano", "int8"),
    ("duration_ms", "float8"),
    ("status_code", "text"),
    ("status_message", "text"),
    ("resource", "jsonb"),
    ("attributes", "jsonb"),
    ("events", "jsonb"),
    ("links", "jsonb"),
    ("is_llm", "bool"),
    ("operation", "text"),
    ("provider", "text"),
    ("model", "text"),
    ("input_tokens", "int4"),
    ("output_tokens", "int4"),
    ("ttft_ms", "float8"),
    ("tpot_ms", "float8"),
    ("e2e_ms", "float8"),
    ("queue_ms", "float8"),
    ("prefill_ms", "float8"),
    ("decode_ms", "float8"),
    ("finish_reason", "text"),
    ("request_id", "text"),
    ("prompt", "text"),
    ("completion", "text"),
)
assert tuple(name for name, _ in COLUMNS) == SpanRow._fields

_COLUMN_LIST = ", ".join(name for name, _ in COLUMNS)
COPY_TYPES = [pgtype for _, pgtype in COLUMNS]
COPY_SPANS = f"COPY spans ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
COPY_STAGING = f"COPY spans_staging ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
STAGING_DDL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS spans_staging "
    "(LIKE spans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
INSERT_FROM_STAGING = (
    f"INSERT INTO spans ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM spans_staging "
    "ON CONFLICT (trace_id, span_id) DO NOTHING"
)


class WriterQueueFull(RuntimeError):
    """Too many spans are waiting to be written; retry later."""


class WriterUnavailable(RuntimeError):
    """The spans could not be committed now (database unreachable, shutting down)."""


@dataclass(slots=True)
class WriteResult:
    """What became of one request's rows: all committed except ``rejected``."""

    rejected: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Pending:
    rows: list[SpanRow]
    future: asyncio.Future[WriteResult]


async def prepare_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    """Make ``conn`` ready for ``write_rows``: autocommit outside explicit transactions,
    JSON columns taking the mapper's JSON text as is, and the session's staging table."""
    await conn.set_autocommit(True)
    set_json_dumps(_already_json, context=conn)
    await conn.execute(STAGING_DDL)


async def write_rows(conn: psycopg.AsyncConnection[Any], rows: list[SpanRow]) -> int:
    """Write ``rows`` in one committed transaction; the number of rows newly inserted.

    The common case is one binary COPY straight into ``spans``. If any span is
    already stored (a retried batch) or repeated in ``rows``, that transaction
    fails on the primary key and the rows go through the staging table with
    ``ON CONFLICT DO NOTHING`` instead: the same result, at twice the cost.
    """
    try:
        async with conn.transaction():
            await _copy(conn, COPY_SPANS, rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    async with conn.transaction():
        await _copy(conn, COPY_STAGING, rows)
        cur = await conn.execute(INSERT_FROM_STAGING)
        return max(cur.rowcount, 0)


async def _copy(conn: psycopg.AsyncConnection[Any], statement: str, rows: list[SpanRow]) -> None:
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            await copy.write_row(row)


def _already_json(text: Any) -> Any:
    return text


class SpanWriter(Daemon):
    name = "span-writer"

    def __init__(
        self, connect: Connect, settings: CollectorSettings, metrics: CollectorMetrics
    ) -> None:
        super().__init__()
        self._connect = connect
        self._settings = settings
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._queued_spans = 0
        self._accepting = True
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._last_connect_failure = -math.inf

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    @property
    def full(self) -> bool:
        """No more spans fit in the queue: refuse before spending CPU on decoding."""
        return self._queued_spans >= self._settings.max_queued_spans

    async def submit(self, rows: list[SpanRow]) -> WriteResult:
        """Wait until ``rows`` are committed (or individually rejected)."""
        if not self._accepting or not self.running:
            raise WriterUnavailable("the collector is shutting down")
        limit = self._settings.max_queued_spans
        if self._queued_spans > 0 and self._queued_spans + len(rows) > limit:
            raise WriterQueueFull(f"{self._queued_spans} spans are already waiting to be written")
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume_exception)
        self._queue.put_nowait(_Pending(rows, future))
        self._set_queued(self._queued_spans + len(rows))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._settings.write_timeout_s)
        except TimeoutError as exc:
            raise WriterUnavailable("timed out waiting for the database to commit") from exc

    def request_stop(self) -> None:
        """Refuse new work; what is already queued is still written."""
        if self._accepting:
            self._accepting = False
            self._queue.put_nowait(None)
        super().request_stop()

    async def run(self) -> None:
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            group, spans = [first], len(first.rows)
            while spans < self._settings.max_batch_spans and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                group.append(item)
                spans += len(item.rows)
            self._set_queued(self._queued_spans - spans)
            try:
                await self._write_group(group)
            except Exception as exc:  # never let one group end the writer
                log.exception("unexpected error writing spans")
                _fail(group, WriterUnavailable(f"internal error: {exc}"))
        await self._close_connection()

    async def _write_group(self, group: list[_Pending]) -> None:
        rows = [row for item in group for row in item.rows]
        try:
            conn = await self._connection()
        except WriterUnavailable as exc:
            _fail(group, exc)
            return
        try:
            started = time.perf_counter()
            inserted = await write_rows(conn, rows)
        except ROW_ERRORS as exc:
            log.warning("a group of %d spans was refused (%s); isolating", len(rows), exc)
            await self._write_isolated(group)
            return
        except (psycopg.Error, OSError) as exc:
            await self._lost_connection(exc)
            _fail(group, WriterUnavailable(f"database unavailable: {_one_line(exc)}"))
            return
        self._metrics.write_seconds.observe(time.perf_counter() - started)
        self._metrics.batches_written.inc()
        self._count_stored(inserted, len(rows))
        _succeed(group)

    async def _write_isolated(self, group: list[_Pending]) -> None:
        """Retry each request alone, then each row of a failing request alone."""
        for index, item in enumerate(group):
            try:
                conn = await self._connection()
                try:
                    inserted = await write_rows(conn, item.rows)
                    self._count_stored(inserted, len(item.rows))
                    result = WriteResult()
                except ROW_ERRORS:
                    result = await self._write_rows_one_by_one(conn, item.rows)
            except (psycopg.Error, OSError, WriterUnavailable) as exc:
                await self._lost_connection(exc)
                _fail(group[index:], WriterUnavailable(f"database unavailable: {_one_line(exc)}"))
                return
            if not item.future.done():
                item.future.set_result(result)

    async def _write_rows_one_by_one(
        self, conn: psycopg.AsyncConnection[Any], rows: list[SpanRow]
    ) -> WriteResult:
        result = WriteResult()
        for row in rows:
            try:
                inserted = await write_rows(conn, [row])
            except ROW_ERRORS as exc:
                result.rejected += 1
                if len(result.errors) < MAX_ERROR_MESSAGES:
                    result.errors.append(
                        f"span {row.span_id} refused by the database: {_one_line(exc)}"
                    )
                self._metrics.spans_rejected.labels(reason="database").inc()
                continue
            self._count_stored(inserted, 1)
        return result

    def _count_stored(self, inserted: int, rows: int) -> None:
        self._metrics.spans_stored.inc(inserted)
        self._metrics.spans_duplicate.inc(rows - inserted)

    def _set_queued(self, spans: int) -> None:
        self._queued_spans = spans
        self._metrics.queued_spans.set(spans)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() - self._last_connect_failure < RECONNECT_INTERVAL_S:
            raise WriterUnavailable("database unavailable (reconnecting)")
        try:
            conn = await self._connect()
            await prepare_connection(conn)
        except (psycopg.Error, OSError) as exc:
            self._last_connect_failure = time.monotonic()
            self._metrics.database_up.set(0)
            raise WriterUnavailable(f"cannot connect to the database: {_one_line(exc)}") from exc
        self._conn = conn
        self._metrics.database_up.set(1)
        return conn

    async def _lost_connection(self, exc: BaseException) -> None:
        log.error("span writer lost the database: %s", _one_line(exc))
        self._metrics.database_up.set(0)
        await self._close_connection()

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()


def _succeed(group: list[_Pending]) -> None:
    for item in group:
        if not item.future.done():
            item.future.set_result(WriteResult())


def _fail(group: list[_Pending], exc: Exception) -> None:
    for item in group:
        if not item.future.done():
            item.future.set_exception(exc)


def _consume_exception(future: asyncio.Future[WriteResult]) -> None:
    # A request that timed out no longer awaits its future; mark its error seen.
    if not future.cancelled():
        future.exception()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
