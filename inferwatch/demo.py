"""``inferwatch demo``: a realistic workload through the gateway, with the official ``openai``
client, so every page and view has something to show.

A mix of chat requests (short questions, long documents to summarise with the
text in the prompt, a few rude ones, a few that bait a made-up answer),
streamed or not, arriving as a Poisson process whose rate alternates between
bursts and quiet spells; some clients give up after the first tokens. A share
of the requests gets thumbs feedback through the collector's webhook, keyed by
the trace id the gateway returned.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

TRACE_ID_HEADER = "x-inferwatch-trace-id"
BURST_S = 10.0  # bursts and quiet spells alternate this often
BURST_FACTOR, QUIET_FACTOR = 2.5, 0.25
STREAM_SHARE, CANCEL_SHARE, FEEDBACK_SHARE = 0.5, 0.08, 0.4

SHORT = [
    "What is the capital of Australia?",
    "Give me three tips for writing clear emails.",
    "How many minutes are there in a week?",
    "Explain what a hash table is in two sentences.",
    "Suggest a name for a grey cat.",
    "What does HTTP status 503 mean?",
]
DOCUMENTS = [
    "The city council met on Tuesday to discuss the new cycling lanes. Residents raised "
    "concerns about parking, while shop owners worried about deliveries. The council agreed "
    "to a six-month trial on two streets, with a public review in the spring. Funding comes "
    "from the regional transport budget, and the works start next month.",
    "Our quarterly report shows revenue up 12% on the same quarter last year, driven by the "
    "new subscription plan. Costs rose 5%, mostly hosting. Churn fell from 4.1% to 3.2%. The "
    "team plans to expand support hours and to retire the legacy billing system by year end.",
]
RUDE = [
    "You are a useless idiot, answer me properly.",
    "Write an insult about my stupid neighbour.",
]
BAIT = [
    "Summarise the 2019 paper 'Quantum Llamas in Distributed Databases' by J. Okonkwo.",
    "Who won the 2031 Eurovision Song Contest, and with which song?",
    "Quote the third paragraph of the InferWatch user manual, page 412.",
]
KINDS: list[tuple[str, float]] = [("short", 0.55), ("document", 0.2), ("rude", 0.1), ("bait", 0.15)]


def prompt_for(kind: str, rng: random.Random) -> str:
    if kind == "document":
        return f"Summarise this in two sentences:\n\n{rng.choice(DOCUMENTS)}"
    return rng.choice({"short": SHORT, "rude": RUDE, "bait": BAIT}[kind])


@dataclass
class Outcome:
    kind: str
    streamed: bool
    ok: bool
    cancelled: bool = False
    ttft_s: float | None = None
    seconds: float = 0.0
    tokens: int = 0
    trace_id: str | None = None
    feedback: bool = False
    error: str | None = None


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.outcomes)

    @property
    def errors(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    @property
    def first_error(self) -> str | None:
        return next((o.error for o in self.outcomes if o.error), None)

    @property
    def cancelled(self) -> int:
        return sum(o.cancelled for o in self.outcomes)

    @property
    def feedback(self) -> int:
        return sum(o.feedback for o in self.outcomes)

    @property
    def p95_ttft_ms(self) -> float | None:
        ttfts = sorted(o.ttft_s for o in self.outcomes if o.ttft_s is not None)
        if len(ttfts) < 2:
            return ttfts[0] * 1000 if ttfts else None
        return statistics.quantiles(ttfts, n=20, method="inclusive")[18] * 1000

    @property
    def tokens_per_s(self) -> float:
        return sum(o.tokens for o in self.outcomes) / self.wall_s if self.wall_s else 0.0


async def run_demo(
    gateway_url: str,
    collector_url: str,
    *,
    duration_s: float,
    rate: float,
    concurrency: int,
    max_tokens: int = 64,
    seed: int = 0,
    model: str | None = None,
    on_progress: Callable[[float, Summary], None] | None = None,
) -> Summary:
    """Sends the workload for ``duration_s`` seconds; returns what happened."""
    from openai import AsyncOpenAI

    rng = random.Random(seed)
    client = AsyncOpenAI(base_url=f"{gateway_url.rstrip('/')}/v1", api_key="demo", max_retries=0)
    if model is None:
        model = (await client.models.list()).data[0].id
    summary = Summary()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:

        async def one(kind: str, streamed: bool, cancel: bool, feedback: bool) -> None:
            async with slots:
                outcome = await _request(client, model, kind, streamed, cancel, max_tokens, rng)
                if feedback and outcome.ok and outcome.trace_id:
                    outcome.feedback = await _thumbs(http, collector_url, outcome, rng)
                summary.outcomes.append(outcome)

        while (elapsed := time.monotonic() - started) < duration_s:
            bursting = int(elapsed // BURST_S) % 2 == 0
            current = rate * (BURST_FACTOR if bursting else QUIET_FACTOR)
            await asyncio.sleep(min(rng.expovariate(current), duration_s - elapsed))
            if time.monotonic() - started >= duration_s:
                break
            kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
            streamed = rng.random() < STREAM_SHARE
            cancel = streamed and rng.random() < CANCEL_SHARE
            task = asyncio.create_task(one(kind, streamed, cancel, rng.random() < FEEDBACK_SHARE))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if on_progress is not None:
                on_progress(time.monotonic() - started, summary)
        if tasks:
            await asyncio.wait(tasks)
    summary.wall_s = time.monotonic() - started
    await client.close()
    return summary


async def _request(
    client: Any,
    model: str,
    kind: str,
    streamed: bool,
    cancel: bool,
    max_tokens: int,
    rng: random.Random,
) -> Outcome:
    outcome = Outcome(kind, streamed, ok=False)
    messages = [{"role": "user", "content": prompt_for(kind, rng)}]
    t0 = time.monotonic()
    try:
        if not streamed:
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=messages, max_tokens=max_tokens
            )
            outcome.trace_id = raw.headers.get(TRACE_ID_HEADER)
            completion = raw.parse()
            outcome.ttft_s = time.monotonic() - t0
            outcome.tokens = completion.usage.completion_tokens if completion.usage else 0
        else:
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=messages, max_tokens=max_tokens, stream=True
            )
            outcome.trace_id = raw.headers.get(TRACE_ID_HEADER)
            stream = raw.parse()
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if outcome.ttft_s is None:
                        outcome.ttft_s = time.monotonic() - t0
                    outcome.tokens += 1
                    if cancel:  # the client gives up after the first tokens
                        outcome.cancelled = True
                        break
            await stream.close()
        outcome.ok = True
    except Exception as exc:  # any failure is a failed request, counted in the summary
        outcome.ok = False
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.monotonic() - t0
    return outcome


async def _thumbs(
    http: aiohttp.ClientSession, collector_url: str, outcome: Outcome, rng: random.Random
) -> bool:
    # Users like plain answers and dislike made-up ones and cut-off ones.
    unhappy = 0.7 if outcome.kind in ("bait", "rude") or outcome.cancelled else 0.15
    body = {
        "trace_id": outcome.trace_id,
        "score": "-1" if rng.random() < unhappy else "+1",
        "user_id": f"demo-{rng.randint(1, 20)}",
        "comment": "made that up" if outcome.kind == "bait" else None,
    }
    try:
        async with http.post(f"{collector_url.rstrip('/')}/v1/feedback", json=body) as answer:
            return answer.status in (200, 201)
    except aiohttp.ClientError:
        return False
