"""HMAC-SHA256 request signatures, the scheme Stripe popularised: ``t=<unix s>,v1=<hex>``.

The digest covers ``"{t}." + body``, so a captured request cannot be replayed
later with a new timestamp. The feedback webhook checks it; the alert webhook
notifier signs with it.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "x-inferwatch-signature"


def digest(secret: str, signed_at: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes, now: float) -> str:
    """The header value signing ``body`` at ``now``."""
    signed_at = int(now)
    return f"t={signed_at},v1={digest(secret, signed_at, body)}"
