"""``inferwatch sql``: one query in a read-only transaction, printed as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg

from inferwatch.store.database import libpq_url

OutputFormat = Literal["table", "csv", "json"]
DEFAULT_TIMEOUT_S = 60.0


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_readonly(url: str, query: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> QueryResult:
    """Run ``query`` in a READ ONLY transaction (rolled back) with a statement timeout."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout_s * 1000)}ms",)
            )
            cur.execute(query.encode())  # no parameters: '%' in the query is literal
            columns = [c.name for c in cur.description] if cur.description else []
            rows = cur.fetchall() if cur.description else []
        conn.rollback()
    return QueryResult(columns, rows)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    writer.writerows([cell(v) for v in row] for row in result.rows)
    return out.getvalue()


def to_json(result: QueryResult) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return float(value)
        return value

    records = [
        {c: plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows
    ]
    return json.dumps(records, default=str, indent=2)
