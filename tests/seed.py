"""Synthetic requests stored the way the collector stores them: OTLP bytes, decoded, COPYed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from collector import synthetic
from collector.decode import decode
from collector.writer import prepare_connection, write_rows
from inferwatch.store.database import Database


async def write_requests(
    db: Database,
    requests: list[synthetic.Request],
    attributes: Mapping[bytes, Mapping[str, Any]] | None = None,
) -> None:
    """Stores ``requests``; ``attributes`` adds to the gateway span of a trace id."""
    export = synthetic.export_request(requests)
    for span in export.resource_spans[0].scope_spans[0].spans:
        span.attributes.extend(synthetic.key_values((attributes or {}).get(span.trace_id, {})))
    body = export.SerializeToString()
    decoded = decode("protobuf", body)
    assert decoded.rejected == 0, decoded.errors
    conn = await db.connect_raw()
    try:
        await prepare_connection(conn)
        await write_rows(conn, decoded.rows)
    finally:
        await conn.close()


def store_requests(
    db: Database,
    requests: list[synthetic.Request],
    attributes: Mapping[bytes, Mapping[str, Any]] | None = None,
) -> None:
    asyncio.run(write_requests(db, requests, attributes))


def chat_texts(question: str, answer: str, context: str | None = None) -> dict[str, str]:
    """The gateway's captured prompt and completion, as GenAI semconv message lists."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": question}]}]
    if context is not None:
        messages.insert(0, {"role": "system", "parts": [{"type": "text", "content": context}]})
    output = [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]
    return {
        "gen_ai.input.messages": json.dumps(messages),
        "gen_ai.output.messages": json.dumps(output),
    }


def requests_at(
    start: datetime,
    n: int,
    *,
    spacing_s: float = 1.0,
    error_every: int = 0,
    ttft_s: float | None = None,
    model: str = synthetic.DEFAULT_MODEL,
    seed: int = 0,
) -> list[synthetic.Request]:
    """``n`` requests from ``start``, every ``error_every``-th failing, TTFT fixed if given."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start_ns = int(start.timestamp() * 1e9) + int(i * spacing_s * 1e9)
        req = synthetic.random_request(rng, start_ns, model=model)
        if error_every and i % error_every == 0:
            req = dataclasses.replace(req, error="upstream returned 500")
        if ttft_s is not None:
            req = dataclasses.replace(req, ttft_s=ttft_s)
        out.append(req)
    return out
