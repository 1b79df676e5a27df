"""Reading a request body within a size limit that holds after decompression.

The limit is enforced while the body streams in: a declared Content-Length
over it is refused before reading, and gzip is inflated incrementally with an
output cap, so a gzip bomb costs at most ``limit`` bytes of memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

GZIP_WBITS = 16 + zlib.MAX_WBITS
IDENTITY_ENCODINGS = frozenset({"", "identity", "none"})


class BodyTooLarge(ValueError):
    pass


class UnsupportedEncoding(ValueError):
    pass


class MalformedBody(ValueError):
    pass


def check_encoding(content_encoding: str | None) -> bool:
    """True for gzip, False for identity; raises ``UnsupportedEncoding`` otherwise."""
    encoding = (content_encoding or "").strip().lower()
    if encoding == "gzip":
        return True
    if encoding in IDENTITY_ENCODINGS:
        return False
    raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported (use gzip)")


def check_declared_length(content_length: str | None, limit: int) -> None:
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError as exc:
        raise MalformedBody(f"bad Content-Length {content_length!r}") from exc
    if declared > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")


async def read_limited(chunks: AsyncIterator[bytes], *, gzip: bool, limit: int) -> bytes:
    """The whole (decompressed) body, or ``BodyTooLarge`` once it would pass ``limit``."""
    out = bytearray()
    received = 0
    inflater = zlib.decompressobj(GZIP_WBITS) if gzip else None
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(f"body is over the {limit}-byte limit")
        if inflater is None:
            out += chunk
            continue
        data = chunk
        while data:
            try:
                out += inflater.decompress(data, limit + 1 - len(out))
            except zlib.error as exc:
                raise MalformedBody(f"body is not valid gzip: {exc}") from exc
            if len(out) > limit:
                raise BodyTooLarge(f"body is over the {limit}-byte limit after decompression")
            data = inflater.unconsumed_tail
            if inflater.eof and inflater.unused_data:  # a further gzip member follows
                data = inflater.unused_data
                inflater = zlib.decompressobj(GZIP_WBITS)
    if inflater is not None and not inflater.eof:
        raise MalformedBody("gzip body is truncated")
    return bytes(out)
