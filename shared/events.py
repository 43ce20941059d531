r"""The execution event: one per proxied call, written by the data plane, read by analytics.

On the stream an event is one entry with one field, EVENT_FIELD ("e1": the event,
wire format version 1), whose value is a line of text (UTF-8): the event's 17
fields in declaration order (`ExecutionEvent`, also the order of the columns of
`executions`), tab-separated, as a row of PostgreSQL's COPY text format: `\N` for
a missing value; backslash, tab, newline and carriage return escaped as `\\`, `\t`,
`\n`, `\r` (no other escape is used); a NUL character, which PostgreSQL cannot
store, replaced by U+FFFD; numbers as Python writes them; `started_at` in UTC with
microseconds, `2026-11-23T16:40:15.000123+00:00`. One field instead of seventeen:
the consumer reads five objects per entry instead of thirty-seven, splits one line,
and hands PostgreSQL the lines as they came. A later format takes another field name.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

EXECUTIONS_STREAM = "veil:executions"


def new_event_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then
    74 random bits. Ordered ids land at the right edge of analytics' primary-key
    index instead of on a random page each (a random v4 id cost PostgreSQL ~6 µs
    an event there). From the seeded PRNG, not os.urandom: uuid4() made a syscall
    per call, ~5% of a worker's CPU under load; the id needs uniqueness, not
    secrecy, and the generator is seeded from urandom again in each forked worker."""
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76
        | random.getrandbits(12) << 64
        | 0b10 << 62
        | random.getrandbits(62)
    )
    # Formatted by hand: str(uuid.UUID(int=...)) costs twice as much, per call.
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The data plane counts every event it appends, per API and minute of the call,
# in a hash per minute beside the stream; analytics reconciles its stored counts
# against these. Kept long enough to reconcile a week.
EXECUTION_COUNTS_TTL_SECONDS = 8 * 24 * 3600


def execution_counts_key(stream: str, started_at: datetime) -> str:
    """The hash (field: API id, value: events appended) for the UTC minute of `started_at`."""
    return f"{stream}:counts:{started_at.astimezone(UTC):%Y%m%dT%H%M}"


EVENT_FIELD = "e1"  # the stream field of an event in wire format 1
EVENT_FIELDS = 17  # tab-separated fields of a wire-format line
_NULL = "\\N"
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
_ESCAPED = re.compile(r"\\(.?)")
# The fields that are text (the others are numbers and the time), by position.
_TEXT_FIELDS = (0, 1, 2, 3, 4, 5, 6, 13, 14)
_REQUIRED = itemgetter(0, 1, 2, 5, 6, 7, 8, 10, 11, 12)  # never missing


def _escaped(value: Any) -> str:
    if value is None:
        return _NULL
    return value.translate(_ESCAPE) if isinstance(value, str) else str(value)


def _utc_text(at: datetime) -> str:
    if at.tzinfo is not UTC:  # a naive time is taken as UTC
        at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.isoformat(timespec="microseconds")


def event_line(values: tuple[Any, ...]) -> bytes:
    """The wire-format line of an event given as its 17 values in declaration order
    (`ExecutionEvent.values()`, or a row of `executions`)."""
    (
        event_id,
        request_id,
        api_id,
        deployment_id,
        caller_id,
        method,
        path,
        status_code,
        latency_ms,
        upstream_ms,
        bytes_in,
        bytes_out,
        started_at,
        key_id,
        subscription_id,
        version,
        gateway_ms,
    ) = values
    line = "\t".join(
        (
            event_id,
            request_id,
            api_id,
            _NULL if deployment_id is None else deployment_id,
            _NULL if caller_id is None else caller_id,
            method,
            path,
            str(status_code),
            str(latency_ms),
            _NULL if upstream_ms is None else str(upstream_ms),
            str(bytes_in),
            str(bytes_out),
            _utc_text(started_at),
            _NULL if key_id is None else key_id,
            _NULL if subscription_id is None else subscription_id,
            _NULL if version is None else str(version),
            _NULL if gateway_ms is None else str(gateway_ms),
        )
    )
    # Escaping is rare (a path with a tab or a backslash): look for it once, in the
    # whole line, rather than in every field. Every missing value put one backslash in.
    if (
        line.count("\t") != EVENT_FIELDS - 1
        or line.count("\\") != values.count(None)
        or "\n" in line
        or "\r" in line
        or "\x00" in line
    ):
        line = "\t".join(_utc_text(v) if i == 12 else _escaped(v) for i, v in enumerate(values))
    try:
        return line.encode()
    except UnicodeEncodeError:  # a lone surrogate: PostgreSQL could not store it either
        return line.encode(errors="replace")


def _unescaped(match: re.Match[str]) -> str:
    found = _UNESCAPE.get(match.group(0))
    if found is None:
        raise ValueError(f"escape {match.group(0)!r} is not in the event wire format")
    return found


def line_values(line: bytes | str) -> tuple[Any, ...]:
    """The 17 values of a wire-format line, in declaration order; ValueError when the
    line is not one (UnicodeDecodeError is a ValueError)."""
    text = line.decode() if isinstance(line, bytes) else line
    parts: list[Any] = text.split("\t")
    if len(parts) != EVENT_FIELDS:
        raise ValueError(f"an event line has {EVENT_FIELDS} fields, not {len(parts)}")
    if text.count("\\") == parts.count(_NULL):  # nothing escaped: the usual line
        parts = [None if value == _NULL else value for value in parts]
    else:
        for i, value in enumerate(parts):
            if value == _NULL:
                parts[i] = None
            elif "\\" in value:
                if i not in _TEXT_FIELDS:
                    raise ValueError(f"field {i} of an event line is not a number or a time")
                parts[i] = _ESCAPED.sub(_unescaped, value)
    if None in _REQUIRED(parts):
        raise ValueError("an event line lacks a required field")
    started_at = datetime.fromisoformat(parts[12])
    if started_at.tzinfo is None:
        raise ValueError("an event's time has no UTC offset")
    upstream, version, gateway = parts[9], parts[15], parts[16]
    return (
        *parts[:7],
        int(parts[7]),
        float(parts[8]),
        None if upstream is None else float(upstream),
        int(parts[10]),
        int(parts[11]),
        started_at,
        parts[13],
        parts[14],
        None if version is None else int(version),
        None if gateway is None else float(gateway),
    )


def build_feed_stream(deployment_id: str) -> str:
    """Redis stream with one deployment's build log and status changes."""
    return f"veil:deployments:{deployment_id}:feed"


@dataclass(frozen=True)
class ExecutionEvent:
    event_id: str
    request_id: str
    api_id: str
    deployment_id: str | None
    caller_id: str | None
    method: str
    path: str
    status_code: int
    latency_ms: float  # total time in the data plane, first byte in to last byte out
    upstream_ms: float | None  # time waiting for the container's response headers
    bytes_in: int
    bytes_out: int
    started_at: datetime
    # Who paid for the call: set when it came with an API key (None: the owner's token).
    key_id: str | None = None
    subscription_id: str | None = None
    version: int | None = None  # the API version the deployment runs
    gateway_ms: float | None = None  # time in the data plane itself: latency minus upstream

    def values(self) -> tuple[Any, ...]:
        """The fields' values in declaration order (a row of `executions`)."""
        return tuple(vars(self).values())

    def to_line(self) -> bytes:
        """The event in wire format 1: the value of the stream field EVENT_FIELD."""
        return event_line(tuple(vars(self).values()))

    @classmethod
    def from_fields(cls, raw: dict[bytes, bytes] | dict[str, str]) -> ExecutionEvent:
        """The event of a stream entry (its fields as redis-py returns them); ValueError
        for an entry that is not an event in wire format 1."""
        line = raw.get(EVENT_FIELD) or raw.get(EVENT_FIELD.encode())  # type: ignore[call-overload]
        if line is None:
            raise ValueError(f"a stream entry without {EVENT_FIELD!r} is not an execution event")
        return cls(*line_values(line))
