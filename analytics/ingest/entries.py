"""Stream entries to wire-format lines, on the ingest path's hot loop.

An entry in wire format 1 (shared/events.py) is its line, as it came. An entry of
the format before (one stream field per event field) is read into the event's
values and written as a line: `row_of` gives exactly
`record(ExecutionEvent.from_fields(fields))` (a test holds them equal) without
building the event and a str copy of every field first.

`checked_line` is the careful way, for a line the fold could not take as it is
(an escape, a NUL), and for every line of a batch the database refused: it reads
the line into values, checks them against the columns of `executions` (lengths,
integer ranges, finite numbers) and writes the line again.
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import Any

from analytics.ingest.rollup import COLUMNS, record
from shared.events import EVENT_FIELD, ExecutionEvent, event_line, line_values
from shared.models import Execution

_FIELD = EVENT_FIELD.encode()
_REQUIRED = (
    b"event_id",
    b"request_id",
    b"api_id",
    b"method",
    b"path",
    b"status_code",
    b"started_at",
)
_fromisoformat = datetime.fromisoformat
# The text columns and the most characters each takes; the integer and float columns.
_TEXT = tuple(
    (i, length)
    for i, name in enumerate(COLUMNS)
    if (length := getattr(Execution.__table__.c[name].type, "length", None)) is not None
)
_INTS = ((7, 2**31), (15, 2**31), (10, 2**63), (11, 2**63))  # int4, int4, int8, int8
_FLOATS = (8, 9, 16)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def line_of(fields: dict[Any, Any]) -> bytes:
    """One entry's event as a wire-format line; ValueError or KeyError for an entry
    that is not an execution event."""
    line = fields.get(_FIELD)
    if line is not None:
        return bytes(line)
    if fields and isinstance(next(iter(fields)), str):  # a client that decodes replies
        text = fields.get(EVENT_FIELD)
        if text is not None:
            return str(text).encode()
    return event_line(checked(row_of(fields)))


def checked(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values of an event if `executions` can store them, ValueError otherwise: the
    same tuple, or a copy with NUL characters (which PostgreSQL cannot store) replaced
    by U+FFFD, as the wire format's encoder does."""
    for i, length in _TEXT:
        value = values[i]
        if value is not None and (len(value) > length or "\x00" in value):
            if len(value) > length:
                raise ValueError(f"{COLUMNS[i]} is longer than {length} characters")
            values = (*values[:i], value.replace("\x00", "\ufffd"), *values[i + 1 :])
    for i, bound in _INTS:
        value = values[i]
        if value is not None and not -bound <= value < bound:
            raise ValueError(f"{COLUMNS[i]} is out of range")
    for i in _FLOATS:
        value = values[i]
        if value is not None and not isfinite(value):
            raise ValueError(f"{COLUMNS[i]} is not a finite number")
    return values


def checked_line(line: bytes) -> bytes:
    """The line read carefully, checked and written again; ValueError if it is not an
    event `executions` can store."""
    return event_line(checked(line_values(line)))


def row_of(fields: dict[Any, Any]) -> tuple[Any, ...]:
    """One entry's fields (the format before wire format 1) as a row of `executions`
    (rollup.COLUMNS order).

    Raises ValueError or KeyError for an entry that is not an execution event.
    """
    if not fields or not isinstance(next(iter(fields)), bytes):  # str keys: decoded replies
        return record(ExecutionEvent.from_fields(fields))
    get = fields.get
    for name in _REQUIRED:
        if name not in fields:
            raise ValueError(f"execution event lacks {name.decode()!r}")
    upstream = get(b"upstream_ms")
    version = get(b"version")
    gateway = get(b"gateway_ms")
    return (
        fields[b"event_id"].decode(),
        fields[b"request_id"].decode(),
        fields[b"api_id"].decode(),
        _text(get(b"deployment_id")),
        _text(get(b"caller_id")),
        fields[b"method"].decode(),
        fields[b"path"].decode(),
        int(fields[b"status_code"]),
        float(get(b"latency_ms", 0)),
        None if upstream is None else float(upstream),
        int(get(b"bytes_in", 0)),
        int(get(b"bytes_out", 0)),
        _fromisoformat(fields[b"started_at"].decode()),
        _text(get(b"key_id")),
        _text(get(b"subscription_id")),
        int(version) if version else None,
        float(gateway) if gateway else None,
    )
