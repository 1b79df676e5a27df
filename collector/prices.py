"""Prices as data: a YAML file shipped with defaults, overridden by the operator's own,
loaded into ``model_prices`` and ``gpu_prices`` where the cost views read them.

How a request's cost follows from them is the ``llm_request_costs`` view's
business (see ``migrations/versions/0002_telemetry.py`` and the README).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, insert, text

from inferwatch.store.database import Database
from inferwatch.store.models import GpuPrice, ModelPrice

DEFAULTS = "prices.yaml"


class PriceError(ValueError):
    """A prices file that cannot be used; the message names the file and the place."""


class TokenPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_usd_per_1k: float = Field(ge=0)
    output_usd_per_1k: float = Field(ge=0)


class PriceBook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, TokenPrice] = {}
    gpus: dict[str, float] = {}

    @field_validator("gpus")
    @classmethod
    def _hourly(cls, gpus: dict[str, float]) -> dict[str, float]:
        for name, price in gpus.items():
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"{name}: $ per hour must be a number ≥ 0, not {price}")
        return gpus


def read_book(text_: str, source: str) -> PriceBook:
    try:
        data: Any = yaml.safe_load(text_) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise PriceError(f"{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PriceError(f"{source}: not valid YAML: {exc}") from None
    try:
        return PriceBook.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise PriceError(f"{source}: {problems}") from None


def load_prices(user_file: Path | None) -> PriceBook:
    """The shipped defaults, with ``user_file``'s entries replacing them by key."""
    defaults = resources.files("collector").joinpath(DEFAULTS).read_text()
    book = read_book(defaults, f"collector/{DEFAULTS}")
    if user_file is None:
        return book
    try:
        own = read_book(user_file.read_text(), str(user_file))
    except OSError as exc:
        raise PriceError(f"cannot read the prices file {user_file}: {exc}") from None
    return PriceBook(models=book.models | own.models, gpus=book.gpus | own.gpus)


async def store_prices(db: Database, book: PriceBook) -> None:
    """Replaces the price tables with ``book`` in one transaction (readers see old or new)."""
    async with db.async_engine.begin() as conn:
        await conn.execute(text("LOCK TABLE model_prices, gpu_prices IN EXCLUSIVE MODE"))
        await conn.execute(delete(ModelPrice))
        await conn.execute(delete(GpuPrice))
        models = [{"model": name, **price.model_dump()} for name, price in book.models.items()]
        gpus = [{"gpu": name, "usd_per_hour": price} for name, price in book.gpus.items()]
        if models:
            await conn.execute(insert(ModelPrice), models)
        if gpus:
            await conn.execute(insert(GpuPrice), gpus)
