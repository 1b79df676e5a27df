"""A tiny OpenAI-style server standing in for vLLM: the model name picks the behaviour.

``ok`` answers normally (log-probs and usage when asked), ``error500`` fails,
``slow`` waits before answering, ``disconnect`` ends a stream without
``[DONE]``, ``malformed`` sends an event that is not JSON, ``endless`` streams
until the client goes away (and records that it went).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

WORDS = ["Write ", "to ", "jane.doe@example.com ", "today."]
TEXT = "".join(WORDS)


@dataclass
class Recorder:
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)


def create_fake_upstream(recorder: Recorder, *, slow_s: float = 5.0) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "ok", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await answer(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await answer(request, chat=False)

    async def answer(request: Request, *, chat: bool) -> Response:
        body = orjson.loads(await request.body())
        recorder.requests.append((dict(request.headers), body))
        model = body.get("model")
        if model == "error500":
            return JSONResponse(
                {"error": {"message": "engine crashed", "type": "server_error"}}, status_code=500
            )
        if model == "slow":
            waited = 0.0
            while waited < slow_s:  # like vLLM: a request whose client left is aborted
                if await request.is_disconnected():
                    recorder.cancelled.set()
                    return Response(status_code=499)
                await asyncio.sleep(0.02)
                waited += 0.02
        if body.get("stream"):
            return StreamingResponse(stream(body, chat), media_type="text/event-stream")
        return JSONResponse(whole(body, chat))

    async def stream(body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
        model = body["model"]
        logprobs = bool(body.get("logprobs"))
        try:
            if chat:
                yield event(
                    {
                        "id": "chatcmpl-9",
                        "object": "chat.completion.chunk",
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
            count = 0
            while True:
                for i, word in enumerate(WORDS):
                    if model == "malformed" and i == 1:
                        yield b"data: {this is not json\n\n"
                    yield event(chunk(model, chat, word, logprobs, i))
                    count += 1
                    if model == "disconnect" and i == 1:
                        return
                    if model == "endless":
                        await asyncio.sleep(0.05)
                if model != "endless":
                    break
            yield event(chunk(model, chat, "", False, 0, finish="stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                yield event(
                    {"id": "chatcmpl-9", "model": model, "choices": [], "usage": usage(count)}
                )
            yield b"data: [DONE]\n\n"
        except asyncio.CancelledError:
            recorder.cancelled.set()
            raise
        finally:
            if model == "endless":
                recorder.cancelled.set()

    return app


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": 11,
        "completion_tokens": completion_tokens,
        "total_tokens": 11 + completion_tokens,
    }


def chunk(
    model: str, chat: bool, text: str, logprobs: bool, i: int, finish: str | None = None
) -> dict[str, Any]:
    lp: dict[str, Any] | None = None
    if logprobs and text:
        lp = (
            {
                "content": [
                    {"token": text, "logprob": -0.1 * (i + 1), "bytes": [], "top_logprobs": []}
                ]
            }
            if chat
            else {
                "tokens": [text],
                "token_logprobs": [-0.1 * (i + 1)],
                "top_logprobs": None,
                "text_offset": [0],
            }
        )
    choice: dict[str, Any] = {"index": 0, "logprobs": lp, "finish_reason": finish}
    if chat:
        choice["delta"] = {"content": text} if text else {}
    else:
        choice["text"] = text
    return {
        "id": "cmpl-9",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def whole(body: dict[str, Any], chat: bool) -> dict[str, Any]:
    logprobs = bool(body.get("logprobs"))
    lp = None
    if logprobs:
        values = [-0.05, -3.0, -0.2, -0.01]
        lp = (
            {
                "content": [
                    {"token": w, "logprob": v, "bytes": [], "top_logprobs": []}
                    for w, v in zip(WORDS, values, strict=True)
                ]
            }
            if chat
            else {
                "tokens": WORDS,
                "token_logprobs": values,
                "top_logprobs": None,
                "text_offset": [0, 6, 9, 30],
            }
        )
    choice: dict[str, Any] = {"index": 0, "logprobs": lp, "finish_reason": "length"}
    if chat:
        choice["message"] = {"role": "assistant", "content": TEXT}
    else:
        choice["text"] = TEXT
    return {
        "id": "cmpl-whole",
        "object": "chat.completion" if chat else "text_completion",
        "model": body["model"],
        "choices": [choice],
        "usage": usage(len(WORDS)),
    }
