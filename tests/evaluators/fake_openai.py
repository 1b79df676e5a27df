"""Stand-in OpenAI-compatible endpoints on loopback: a judge that answers no when the answer
says 'wrong', and a sampler that returns fixed samples per question."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request


def fake_judge(p_no_when_wrong: float = 0.9) -> tuple[FastAPI, list[dict[str, Any]]]:
    app, seen = FastAPI(), list[dict[str, Any]]()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "judge-model", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        seen.append({**body, "traceparent": request.headers.get("traceparent")})
        wrong = "wrong" in body["messages"][-1]["content"].split("Answer:")[-1]
        p_no = p_no_when_wrong if wrong else 1 - p_no_when_wrong
        said = "no" if p_no >= 0.5 else "yes"
        top = [
            {"token": "no", "logprob": math.log(p_no), "bytes": None},
            {"token": " Yes", "logprob": math.log(1 - p_no), "bytes": None},
        ]
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": said},
                    "logprobs": {
                        "content": [
                            {
                                "token": said,
                                "logprob": math.log(max(p_no, 1 - p_no)),
                                "bytes": None,
                                "top_logprobs": top,
                            }
                        ]
                    },
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }

    return app, seen


def fake_sampler(samples: Mapping[str, list[str]]) -> tuple[FastAPI, list[dict[str, Any]]]:
    """Answers a chat request's last message with the first ``n`` of its fixed samples."""
    app, seen = FastAPI(), list[dict[str, Any]]()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "served-model", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        seen.append({**body, "traceparent": request.headers.get("traceparent")})
        texts = samples[body["messages"][-1]["content"]][: body.get("n", 1)]
        return {
            "id": "chatcmpl-2",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
                for i, text in enumerate(texts)
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    return app, seen
