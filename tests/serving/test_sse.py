from __future__ import annotations

from serving.sse import SSEParser, encode_data


def test_events_split_across_chunks_keep_their_bytes() -> None:
    parser = SSEParser()
    stream = b'data: {"a": 1}\n\n: keep-alive\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n'
    events = []
    for i in range(0, len(stream), 7):  # arbitrary chunk boundaries
        events += parser.feed(stream[i : i + 7])
    assert [e.data for e in events] == ['{"a": 1}', None, "line1\nline2", "[DONE]"]
    assert b"".join(e.raw for e in events) == stream
    assert parser.flush() is None


def test_unterminated_tail_is_flushed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: partial") == []
    tail = parser.flush()
    assert tail is not None and tail.data == "partial"


def test_encode() -> None:
    assert encode_data('{"x":1}') == b'data: {"x":1}\n\n'
