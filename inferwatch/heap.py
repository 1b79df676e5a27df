"""Keeping the cyclic garbage collector off a server's latency.

A long-running server holds hundreds of thousands of long-lived objects
(modules, the web framework, OpenTelemetry, the HTTP client). Every full
collection rescans them all: in the gateway, a 46 ms stall of the event loop
that showed in its p99 (``bench/gateway_overhead.py``).
Freezing the heap once start-up is done moves them out of the collector's
view; what the server allocates afterwards is collected as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once, after the app is built and before it serves."""
    gc.collect()
    gc.freeze()
