"""The feedback webhook over real HTTP into real Postgres: storage, linking, every bad input."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from collector import synthetic
from collector.feedback import (
    SIGNATURE_HEADER,
    FeedbackIn,
    FeedbackRejected,
    check_signature,
    score_of,
)
from inferwatch.settings import CollectorSettings
from inferwatch.store.database import Database
from tests.collector.conftest import Collector, rows, run_collector

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SECRET = "s3cret"


def test_thumbs_before_the_spans_is_stored_and_linked_once_they_arrive(
    collector: Collector,
) -> None:
    req = synthetic.random_requests(1, seed=3)[0]
    trace_id = req.trace_id.hex()
    answer = collector.http.post(
        "/v1/feedback",
        json={"trace_id": trace_id.upper(), "score": "+1", "comment": "great", "user_id": "u1"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() | {"id": 0} == {
        "id": 0,
        "trace_id": trace_id,
        "replayed": False,
        "linked": False,
    }
    assert rows(collector.db, "SELECT * FROM llm_request_feedback") == []

    collector.store([req])
    (linked,) = rows(collector.db, "SELECT * FROM llm_request_feedback")
    assert linked["trace_id"] == trace_id
    assert (linked["feedback_count"], linked["thumbs_up"], linked["thumbs_down"]) == (1, 1, 0)
    assert linked["mean_score"] == 1.0 and linked["last_comment"] == "great"

    down = collector.http.post("/v1/feedback", json={"trace_id": trace_id, "score": -1})
    assert down.json()["linked"] is True
    (both,) = rows(collector.db, "SELECT * FROM llm_request_feedback")
    assert (both["feedback_count"], both["thumbs_down"], both["mean_score"]) == (2, 1, 0.5)


def test_ratings_are_normalized_on_their_scale(collector: Collector) -> None:
    default = collector.http.post(
        "/v1/feedback", json={"trace_id": TRACE, "kind": "rating", "score": 4}
    )
    declared = collector.http.post(
        "/v1/feedback",
        json={"trace_id": TRACE, "kind": "rating", "score": 7, "range": [0, 10], "label": "ok"},
    )
    assert default.status_code == declared.status_code == 201
    got = rows(collector.db, "SELECT kind, score, normalized, label FROM feedback ORDER BY id")
    assert got == [
        {"kind": "rating", "score": 4.0, "normalized": 0.75, "label": None},
        {"kind": "rating", "score": 7.0, "normalized": 0.7, "label": "ok"},
    ]


def test_an_idempotency_key_is_stored_once(collector: Collector) -> None:
    body = {"trace_id": TRACE, "score": "down", "idempotency_key": "k-1", "metadata": {"a": 1}}
    first = collector.http.post("/v1/feedback", json=body)
    again = collector.http.post("/v1/feedback", json={**body, "score": "up"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True and again.json()["id"] == first.json()["id"]
    got = rows(collector.db, "SELECT score, metadata FROM feedback")
    assert got == [{"score": -1.0, "metadata": {"a": 1}}]


@pytest.mark.parametrize(
    ("body", "field_or_message"),
    [
        ({"trace_id": TRACE, "score": 4}, "a thumbs score is +1 or -1"),
        ({"trace_id": TRACE, "score": "meh"}, "a thumbs score is +1 or -1"),
        ({"trace_id": TRACE, "score": True}, "not true/false"),
        ({"trace_id": TRACE, "kind": "rating", "score": 9}, "outside its range [1, 5]"),
        ({"trace_id": TRACE, "kind": "rating", "score": "4"}, "a rating is a number"),
        ({"trace_id": TRACE, "kind": "rating", "score": 1, "range": [5, 1]}, "min < max"),
        ({"trace_id": TRACE, "score": 1, "range": [0, 1]}, "range applies to kind 'rating'"),
        ({"trace_id": TRACE, "kind": "stars", "score": 1}, "kind"),
        ({"trace_id": "xyz", "score": 1}, "trace_id"),
        ({"trace_id": "0" * 32, "score": 1}, "trace_id"),
        ({"trace_id": TRACE}, "score"),
        ({"trace_id": TRACE, "score": 1, "colour": "red"}, "colour"),
        ({"trace_id": TRACE, "score": 1, "metadata": [1]}, "metadata"),
        ({"trace_id": TRACE, "score": 1, "user_id": "u" * 500}, "user_id"),
    ],
)
def test_bad_feedback_is_refused_with_the_reason(
    collector: Collector, body: dict[str, Any], field_or_message: str
) -> None:
    answer = collector.http.post("/v1/feedback", json=body)
    assert answer.status_code == 422, answer.text
    assert field_or_message in answer.text
    assert collector.count("feedback") == 0


def test_a_body_that_is_not_json_or_too_large_is_refused(collector: Collector) -> None:
    not_json = collector.http.post("/v1/feedback", content=b"thumbs up!")
    assert not_json.status_code == 422 and "JSON" in not_json.text
    huge = {"trace_id": TRACE, "score": 1, "comment": "x" * (70 * 1024)}
    too_large = collector.http.post("/v1/feedback", content=orjson.dumps(huge))
    assert too_large.status_code == 413
    assert collector.count("feedback") == 0


def sign(body: bytes, signed_at: int, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256)
    return f"t={signed_at},v1={mac.hexdigest()}"


@pytest.fixture
def signed_collector(db: Database) -> Iterator[Collector]:
    settings = CollectorSettings(grpc_port=None, feedback_secret=SecretStr(SECRET))
    yield from run_collector(db, settings)


def test_a_configured_secret_requires_a_fresh_valid_signature(signed_collector: Collector) -> None:
    http = signed_collector.http
    body = orjson.dumps({"trace_id": TRACE, "score": 1})
    now = int(time.time())
    refused = {
        "unsigned": {},
        "garbled": {SIGNATURE_HEADER: "sha256=abc"},
        "wrong secret": {SIGNATURE_HEADER: sign(body, now, "other")},
        "stale": {SIGNATURE_HEADER: sign(body, now - 3600)},
        "other body": {SIGNATURE_HEADER: sign(body + b" ", now)},
    }
    for case, headers in refused.items():
        answer = http.post("/v1/feedback", content=body, headers=headers)
        assert answer.status_code == 401, case
    assert signed_collector.count("feedback") == 0
    good = http.post("/v1/feedback", content=body, headers={SIGNATURE_HEADER: sign(body, now)})
    assert good.status_code == 201
    assert signed_collector.count("feedback") == 1


def test_signatures_accept_any_of_several_v1_values() -> None:
    body = b"{}"
    rotated = sign(body, 1000, "old").split(",")[1]
    check_signature(SECRET, f"{sign(body, 1000)},{rotated}", body, 1000.0, 300)
    check_signature("old", f"{sign(body, 1000)},{rotated}", body, 1100.0, 300)
    with pytest.raises(FeedbackRejected, match="off"):
        check_signature(SECRET, sign(body, 1000), body, 1301.0, 300)


def test_scores_normalize_to_the_unit_interval() -> None:
    def normalized(**kw: Any) -> float:
        return score_of(FeedbackIn(trace_id=TRACE, **kw), (1.0, 5.0))[1]

    assert normalized(score="up") == 1.0 and normalized(score="-1") == 0.0
    assert normalized(kind="rating", score=1) == 0.0
    assert normalized(kind="rating", score=3) == 0.5
    assert normalized(kind="rating", score=0.25, range=(0, 1)) == 0.25
