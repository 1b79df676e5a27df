"""Prices from YAML into Postgres, and the cost of each request on hand-computed cases."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from collector import synthetic
from collector.prices import PriceBook, PriceError, TokenPrice, load_prices, store_prices
from tests.collector.conftest import Collector

HOUR_A = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # token-priced and GPU-hour requests
HOUR_B = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # GPU-hours, no engine metrics
MINUTE = timedelta(minutes=1)


def test_defaults_are_shipped_and_a_user_file_overrides_them(tmp_path: Path) -> None:
    defaults = load_prices(None)
    assert defaults.models == {} and defaults.gpus["H100"] == 3.0
    own = tmp_path / "prices.yaml"
    own.write_text(
        "models:\n  my-model*: {input_usd_per_1k: 0.1, output_usd_per_1k: 0.2}\n"
        "gpus:\n  H100: 2.25\n  RTX 6000: 0.9\n"
    )
    book = load_prices(own)
    assert book.models == {"my-model*": TokenPrice(input_usd_per_1k=0.1, output_usd_per_1k=0.2)}
    assert book.gpus["H100"] == 2.25 and book.gpus["RTX 6000"] == 0.9 and book.gpus["L4"] == 0.8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("gpus:\n  H100: [3\n", "prices.yaml:3:1: not valid YAML"),
        ("gpus:\n  H100: -1\n", "gpus: Value error, H100: $ per hour must be a number ≥ 0"),
        ("gpus:\n  H100: lots\n", "gpus.H100: Input should be a valid number"),
        ("models:\n  m: {input_usd_per_1k: 1}\n", "models.m.output_usd_per_1k: Field required"),
        ("gpu:\n  H100: 1\n", "gpu: Extra inputs are not permitted"),
    ],
)
def test_a_bad_prices_file_says_where(tmp_path: Path, content: str, message: str) -> None:
    own = tmp_path / "prices.yaml"
    own.write_text(content)
    with pytest.raises(PriceError) as raised:
        load_prices(own)
    assert message in str(raised.value)
    with pytest.raises(PriceError, match="cannot read the prices file"):
        load_prices(tmp_path / "missing.yaml")


def request(seed: int, model: str, at: datetime, tokens_in: int, tokens_out: int) -> Any:
    (req,) = synthetic.random_requests(1, seed=seed, start_ns=int(at.timestamp() * 1e9))
    return dataclasses.replace(
        req, model=model, input_tokens=tokens_in, output_tokens=tokens_out, error=None
    )


def execute(collector: Collector, sql: str, **params: Any) -> list[dict[str, Any]]:
    with collector.db.engine.begin() as conn:
        result = conn.execute(text(sql), params)
        return [dict(r._mapping) for r in result] if result.returns_rows else []


def test_request_costs_by_tokens_and_by_gpu_hours(collector: Collector) -> None:
    book = PriceBook(
        models={
            "tin*": TokenPrice(input_usd_per_1k=9, output_usd_per_1k=9),
            "tiny": TokenPrice(input_usd_per_1k=0.5, output_usd_per_1k=1.5),  # longest wins
        },
        gpus={"H100": 3.0, "L4": 0.8, "L40S": 1.2},
    )
    asyncio.run(store_prices(collector.db, book))
    tiny = request(1, "tiny", HOUR_A + MINUTE, 1000, 200)
    own = request(2, "self-hosted", HOUR_A + 5 * MINUTE, 300, 700)
    own_b1 = request(3, "self-hosted", HOUR_B + MINUTE, 600, 400)
    own_b2 = request(4, "self-hosted", HOUR_B + 2 * MINUTE, 1000, 2000)
    collector.store([tiny, own, own_b1, own_b2])

    gpu = (
        "INSERT INTO gpu_samples (time, host, gpu_index, interval_s, name)"
        " VALUES (:t, 'h', :i, 5, :name)"
    )
    for hour in (HOUR_A, HOUR_B):  # an H100 and an L4 (not an L40S) seen in both hours
        for minute in (10, 20):
            t = hour + minute * MINUTE
            execute(collector, gpu, t=t, i=0, name="NVIDIA H100 80GB HBM3")
            execute(collector, gpu, t=t, i=1, name="NVIDIA L4")
    engine_id = execute(
        collector, "INSERT INTO engines (name, url) VALUES ('e', 'http://e') RETURNING id"
    )[0]["id"]
    sample = (
        "INSERT INTO engine_samples (time, engine_id, model, prompt_tokens, generation_tokens,"
        " finished_by_reason) VALUES (:t, :e, 'self-hosted', :p, :g, '{}')"
    )
    # The engines processed 10,000 tokens in hour A (the delta between its two samples).
    execute(collector, sample, t=HOUR_A + 2 * MINUTE, e=engine_id, p=50, g=50)
    execute(collector, sample, t=HOUR_A + 30 * MINUTE, e=engine_id, p=4050, g=6050)

    costs = {
        r["trace_id"]: r
        for r in execute(collector, "SELECT trace_id, cost_basis, cost_usd FROM llm_request_costs")
    }

    def cost(req: Any) -> tuple[Any, Any]:
        row = costs[req.trace_id.hex()]
        return row["cost_basis"], row["cost_usd"]

    assert cost(tiny) == ("tokens", pytest.approx(1000 / 1000 * 0.5 + 200 / 1000 * 1.5))
    gpu_usd = 3.0 + 0.8  # one H100 and one L4 for the hour
    assert cost(own) == ("gpu_hours", pytest.approx(gpu_usd * 1000 / 10_000))
    # Hour B has no engine metrics: the hour's stored unpriced requests share the cost.
    assert cost(own_b1) == ("gpu_hours", pytest.approx(gpu_usd * 1000 / 4000))
    assert cost(own_b2) == ("gpu_hours", pytest.approx(gpu_usd * 3000 / 4000))

    hourly = {(r["hour"], r["model"]): r for r in execute(collector, "SELECT * FROM cost_hourly")}
    b = hourly[(HOUR_B, "self-hosted")]
    assert b["requests"] == 2 and b["cost_usd"] == pytest.approx(gpu_usd)
    assert b["usd_per_request"] == pytest.approx(gpu_usd / 2)
    assert b["usd_per_1k_tokens"] == pytest.approx(gpu_usd * 1000 / 4000)
    assert hourly[(HOUR_A, "tiny")]["usd_per_1k_tokens"] == pytest.approx(0.8 * 1000 / 1200)


def test_a_request_with_no_price_and_no_gpu_has_no_cost(collector: Collector) -> None:
    collector.store([request(5, "unpriced", HOUR_A, 10, 10)])
    (row,) = execute(collector, "SELECT cost_basis, cost_usd FROM llm_request_costs")
    assert row == {"cost_basis": None, "cost_usd": None}
