"""OTLP ``AnyValue`` to JSON-ready Python values.

Postgres text and JSONB cannot hold U+0000, so NUL characters become U+FFFD
here, before they can fail a whole batch at write time. Non-finite doubles,
which JSON cannot hold, become the strings "NaN", "Infinity", "-Infinity".
Bytes become base64 strings, as in the OTLP JSON encoding.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

REPLACEMENT = "\ufffd"


def clean_text(s: str) -> str:
    return s.replace("\x00", REPLACEMENT) if "\x00" in s else s


def any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return clean_text(v.string_value)
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        d = v.double_value
        if math.isfinite(d):
            return d
        return "NaN" if math.isnan(d) else ("Infinity" if d > 0 else "-Infinity")
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(v.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None  # an empty AnyValue is a valid "null"


def attributes_dict(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """Attribute list as a dict; a repeated key keeps its last value."""
    return {clean_text(kv.key): any_value(kv.value) for kv in kvs}
