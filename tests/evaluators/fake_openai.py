"""Stand-in OpenAI-compatible endpoints on loopback: a judge that answers no when the answer
says 'wrong', and a sampler that returns fixed samples per question."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request

Body = dict[str, Any]


def _endpoint(model: str, answer: Callable[[Body], Body]) -> tuple[FastAPI, list[Body]]:
    """Serves ``model`` and answers chat requests with ``answer(body)``; records every request
    body with the ``traceparent`` it came with."""
    app, seen = FastAPI(), list[Body]()

    @app.get("/v1/models")
    async def models() -> Body:
        return {"object": "list", "data": [{"id": model, "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Body:
        body = await request.json()
        seen.append({**body, "traceparent": request.headers.get("traceparent")})
        return answer(body)

    return app, seen


def fake_judge(p_no_when_wrong: float = 0.9) -> tuple[FastAPI, list[Body]]:
    def answer(body: Body) -> Body:
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

    return _endpoint("judge-model", answer)


def fake_sampler(samples: Mapping[str, list[str]]) -> tuple[FastAPI, list[Body]]:
    """Answers a chat request's last message with the first ``n`` of its fixed samples."""

    def answer(body: Body) -> Body:
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

    return _endpoint("served-model", answer)
