"""An OpenAI-compatible endpoint that evaluators call (the judge, self-consistency).

By default it is the bundled vLLM itself, not the gateway, so that the
evaluators' own calls are not traced and evaluated as traffic. Every call
carries an unsampled ``traceparent``: vLLM's tracer follows the parent's
sampled flag, so it records no span for them either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import openai

T = TypeVar("T")
R = TypeVar("R")
# Calls in flight at once from one batch: the server batches them (vLLM does), and a batch
# of slow calls still ends well within its jobs' lease.
CONCURRENCY = 8


def untraced() -> dict[str, str]:
    """Headers for a call that no tracer downstream should record."""
    return {"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"}


class Endpoint:
    def __init__(self, base_url: str, *, model: str | None = None, timeout_s: float = 60.0):
        self.base_url = base_url
        self._model = model
        self.client = openai.OpenAI(
            base_url=base_url, api_key="-", timeout=timeout_s, max_retries=1
        )

    @property
    def model(self) -> str:
        """The configured model, or the endpoint's first one (asked once)."""
        if self._model is None:
            self._model = self.client.models.list().data[0].id
        return self._model


def concurrently(call: Callable[[T], R], items: Sequence[T], limit: int = CONCURRENCY) -> list[R]:
    """``call`` on every item, ``limit`` at a time; results in order, the first error raised."""
    if len(items) <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(limit, len(items))) as pool:
        return list(pool.map(call, items))
