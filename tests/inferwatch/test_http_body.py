"""Body reading: limits hold after decompression, bad gzip is a clear error."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest

from inferwatch.http_body import (
    BodyTooLarge,
    MalformedBody,
    UnsupportedEncoding,
    check_declared_length,
    check_encoding,
    read_limited,
)


def read(data: bytes, *, gz: bool, limit: int, chunk: int = 1000) -> bytes:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    return asyncio.run(read_limited(chunks(), gzip=gz, limit=limit))


def test_identity_and_gzip_round_trip() -> None:
    payload = bytes(range(256)) * 100
    assert read(payload, gz=False, limit=len(payload)) == payload
    assert read(gzip.compress(payload), gz=True, limit=len(payload)) == payload


def test_limit_is_exact() -> None:
    payload = b"x" * 5000
    assert read(gzip.compress(payload), gz=True, limit=5000) == payload
    with pytest.raises(BodyTooLarge):
        read(gzip.compress(payload), gz=True, limit=4999)
    with pytest.raises(BodyTooLarge):
        read(payload, gz=False, limit=4999)


def test_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    with pytest.raises(BodyTooLarge, match="after decompression"):
        read(bomb, gz=True, limit=1_000_000, chunk=len(bomb))


def test_concatenated_gzip_members() -> None:
    assert read(gzip.compress(b"abc") + gzip.compress(b"def"), gz=True, limit=100) == b"abcdef"


def test_truncated_and_invalid_gzip() -> None:
    with pytest.raises(MalformedBody, match="truncated"):
        read(gzip.compress(b"a" * 1000)[:-10], gz=True, limit=10_000)
    with pytest.raises(MalformedBody, match="not valid gzip"):
        read(b"definitely not gzip", gz=True, limit=10_000)


def test_encodings_and_declared_lengths() -> None:
    assert check_encoding("GZIP") is True
    assert check_encoding(None) is False
    assert check_encoding("identity") is False
    with pytest.raises(UnsupportedEncoding):
        check_encoding("zstd")
    check_declared_length("10", 10)
    with pytest.raises(BodyTooLarge):
        check_declared_length("11", 10)
    with pytest.raises(MalformedBody):
        check_declared_length("ten", 10)
