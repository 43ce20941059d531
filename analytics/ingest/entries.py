"""Stream entries to execution rows, on the ingest path's hot loop.

`row_of` gives exactly `record(ExecutionEvent.from_fields(fields))` (a test holds
them equal) without building the event and a str copy of every field first:
about a quarter of the cost, for every event stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from analytics.ingest.rollup import record
from shared.events import ExecutionEvent

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


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def row_of(fields: dict[Any, Any]) -> tuple[Any, ...]:
    """One entry's fields as a row of `executions` (rollup.COLUMNS order).

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
