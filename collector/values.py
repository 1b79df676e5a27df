"""OTLP ``AnyValue`` to JSON-ready Python values.

Non-finite doubles, which JSON cannot hold, become the strings "NaN",
"Infinity", "-Infinity". Bytes become base64 strings, as in the OTLP JSON
encoding. Postgres text and JSONB cannot hold U+0000: ``clean_text`` and
``scrub_nul`` turn it into U+FFFD. ``attributes_dict`` leaves that to its
caller, who can check the serialized JSON once instead of every string.
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
        return v.string_value
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
    """Attribute list as a dict; a repeated key keeps its last value. NULs are kept.

    The hot path of ingest (every attribute of every span): scalar kinds are
    handled inline rather than through ``any_value``.
    """
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        kind = value.WhichOneof("value")
        v: Any
        if kind == "string_value":
            v = value.string_value
        elif kind == "int_value":
            v = value.int_value
        elif kind == "double_value":
            v = value.double_value
            if v - v != 0.0:  # NaN or ±Infinity
                v = any_value(value)
        elif kind == "bool_value":
            v = value.bool_value
        else:
            v = any_value(value)
        out[kv.key] = v
    return out


def scrub_nul(value: Any) -> Any:
    """``value`` with U+0000 replaced in every string, keys included."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): scrub_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_nul(v) for v in value]
    return value
