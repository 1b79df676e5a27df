"""Incremental parsing of a ``text/event-stream`` body, keeping each event's raw bytes.

The gateway forwards events untouched unless it must change one, so the parser
hands back the exact bytes next to the decoded ``data`` field.
"""

from __future__ import annotations

from dataclasses import dataclass

_SEPARATORS = (b"\r\n\r\n", b"\n\n", b"\r\r")


@dataclass(frozen=True, slots=True)
class Event:
    raw: bytes  # the event as received, separator included
    data: str | None  # the joined ``data:`` lines, or None for comments and other fields


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            cut = _next_separator(self._buffer)
            if cut is None:
                return events
            end, sep_len = cut
            raw, self._buffer = self._buffer[: end + sep_len], self._buffer[end + sep_len :]
            events.append(Event(raw, _data_of(raw[:end])))

    def flush(self) -> Event | None:
        """What is left when the stream ends: an event without its blank line, if any."""
        raw, self._buffer = self._buffer, b""
        if not raw.strip():
            return None
        return Event(raw, _data_of(raw))


def _next_separator(buffer: bytes) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for sep in _SEPARATORS:
        index = buffer.find(sep)
        if index != -1 and (best is None or index < best[0]):
            best = (index, len(sep))
    return best


def _data_of(block: bytes) -> str | None:
    lines = []
    for line in block.decode("utf-8", errors="replace").splitlines():
        if line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
    return "\n".join(lines) if lines else None


def encode_data(data: str) -> bytes:
    return f"data: {data}\n\n".encode()
