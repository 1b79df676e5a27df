"""The feedback webhook: ``POST /v1/feedback``, a user's verdict on one request.

A verdict is keyed by the request's trace id (the gateway returns it in
``x-inferwatch-trace-id``). It may arrive before the request's spans: it is
stored anyway, and the ``llm_request_feedback`` view links it once they are.
Each verdict is stored once per ``idempotency_key``; a replay answers 200 with
the first one's id. With a shared secret configured, every request must carry
``X-InferWatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t." + body>``
signed less than ``MAX_SIGNATURE_AGE_S`` ago.

Answers: 201 stored, 200 replayed key, 401 signature missing/bad/stale, 413
body too large, 422 the body does not say what feedback it is (with which
field and why).
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Table, select, text
from sqlalchemy.dialects.postgresql import insert

from inferwatch import signing
from inferwatch.http_body import BodyTooLarge, MalformedBody, check_declared_length, read_limited
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from inferwatch.store.models import Feedback

SIGNATURE_HEADER = signing.HEADER
MAX_SIGNATURE_AGE_S = 300
THUMBS = {"+1": 1.0, "-1": -1.0, "up": 1.0, "down": -1.0}
MAX_TEXT = 200  # characters of a label, user id or idempotency key

ShortText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class FeedbackIn(BaseModel):
    """What a client sends. ``kind`` decides how ``score`` reads."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    kind: Literal["thumbs", "rating"] = "thumbs"
    score: float | str
    range: tuple[float, float] | None = None  # for a rating; default: the configured range
    label: ShortText | None = None
    comment: str | None = Field(default=None, max_length=10_000)
    user_id: ShortText | None = None
    idempotency_key: ShortText | None = None
    metadata: dict[str, Any] = {}

    @field_validator("score", mode="before")
    @classmethod
    def _not_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a score is +1/-1 or a number, not true/false")
        return value

    @field_validator("trace_id")
    @classmethod
    def _not_zero(cls, value: str) -> str:
        if set(value) == {"0"}:
            raise ValueError("the all-zero trace id is invalid (W3C Trace Context)")
        return value.lower()


class FeedbackRejected(ValueError):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def score_of(feedback: FeedbackIn, default_range: tuple[float, float]) -> tuple[float, float]:
    """(score as stored, score normalized to [0, 1]); ``FeedbackRejected`` (422) if it does
    not fit its kind."""
    if feedback.kind == "thumbs":
        if feedback.range is not None:
            raise FeedbackRejected(422, "range applies to kind 'rating', not 'thumbs'")
        raw = feedback.score
        value = THUMBS.get(raw.strip().lower()) if isinstance(raw, str) else raw
        if value not in (1.0, -1.0):
            raise FeedbackRejected(
                422,
                f"a thumbs score is +1 or -1 (or 'up'/'down'), not {raw!r}; "
                "send kind 'rating' for a score on a scale",
            )
        return value, (value + 1) / 2
    low, high = feedback.range or default_range
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise FeedbackRejected(422, f"range must be [min, max] with min < max, not [{low}, {high}]")
    if isinstance(feedback.score, str):
        raise FeedbackRejected(422, f"a rating is a number, not {feedback.score!r}")
    value = feedback.score
    if not math.isfinite(value) or not low <= value <= high:
        raise FeedbackRejected(422, f"rating {value} is outside its range [{low:g}, {high:g}]")
    return value, (value - low) / (high - low)


def check_signature(
    secret: str, header: str | None, body: bytes, now: float, max_age_s: float
) -> None:
    """Raises ``FeedbackRejected`` (401) unless ``header`` signs ``body`` with ``secret``."""
    if not header:
        raise FeedbackRejected(401, f"missing {SIGNATURE_HEADER} (this collector requires it)")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        signed_at = int(fields["t"][0])
        signatures = fields["v1"]
    except (KeyError, ValueError):
        message = f"{SIGNATURE_HEADER} must be 't=<unix seconds>,v1=<hex>'"
        raise FeedbackRejected(401, message) from None
    if abs(now - signed_at) > max_age_s:
        raise FeedbackRejected(401, f"signature timestamp is more than {max_age_s:g} s off")
    expected = signing.digest(secret, signed_at, body)
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise FeedbackRejected(401, "signature does not match the body")


def feedback_router(
    settings: CollectorSettings, db: Database, *, clock: Callable[[], float] = time.time
) -> APIRouter:
    router = APIRouter()
    secret = settings.feedback_secret.get_secret_value() if settings.feedback_secret else None

    @router.post("/v1/feedback")
    async def post_feedback(request: Request) -> JSONResponse:
        limit = settings.feedback_max_bytes
        try:
            check_declared_length(request.headers.get("content-length"), limit)
            body = await read_limited(request.stream(), gzip=False, limit=limit)
            if secret is not None:
                header = request.headers.get(SIGNATURE_HEADER)
                check_signature(secret, header, body, clock(), MAX_SIGNATURE_AGE_S)
            feedback = FeedbackIn.model_validate_json(body)
            score, normalized = score_of(feedback, settings.feedback_rating_range)
        except BodyTooLarge:
            return _error(413, f"feedback bodies are limited to {limit} bytes")
        except MalformedBody as exc:
            return _error(400, str(exc))
        except FeedbackRejected as exc:
            return _error(exc.status, exc.detail)
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "problem": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            return _error(422, problems)
        row = {
            "trace_id": feedback.trace_id,
            "kind": feedback.kind,
            "score": score,
            "normalized": normalized,
            "label": feedback.label,
            "comment": feedback.comment,
            "user_id": feedback.user_id,
            "idempotency_key": feedback.idempotency_key,
            "metadata": feedback.metadata,
        }
        table = cast(Table, Feedback.__table__)
        async with db.async_engine.begin() as conn:
            stored = await conn.scalar(
                insert(table)
                .values(row)
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(table.c.id)
            )
            replayed = stored is None
            if replayed:
                stored = await conn.scalar(
                    select(table.c.id).where(table.c.idempotency_key == feedback.idempotency_key)
                )
            linked = await conn.scalar(
                text("SELECT EXISTS (SELECT 1 FROM spans WHERE trace_id = :t)"),
                {"t": feedback.trace_id},
            )
        return JSONResponse(
            {"id": stored, "trace_id": feedback.trace_id, "replayed": replayed, "linked": linked},
            status_code=200 if replayed else 201,
        )

    return router


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"error": detail}, status_code=status)
