r"""The execution event: one per proxied call, written by the data plane, read by analytics.

`ExecutionEvent` is the one definition of the event's fields. Their order is the
wire format's and that of the columns of `executions` (shared/models/execution.py
makes the table from `FIELDS`), which is also the order analytics COPYs them in;
their annotations give each field's kind (text, int, float, time or bool), whether
it may be missing (`| None`) and its bound (`Chars`, `Bits`). Everything that reads
or checks a field by its position takes the position from `INDEX`, once, at import.
A field is added by one line there (and a migration for the table);
tests/unit/test_event_schema.py holds the wire, the COPY and the table to one order.

On the stream an event is one entry with one field, EVENT_FIELD ("e1": the event,
wire format version 1), whose value is a line of text (UTF-8): the event's fields
in declaration order, tab-separated, as a row of PostgreSQL's COPY text format:
`\N` for a missing value; backslash, tab, newline and carriage return escaped as
`\\`, `\t`, `\n`, `\r` (no other escape is used); a NUL character, which
PostgreSQL cannot store, replaced by U+FFFD; numbers as Python writes them; booleans
`t` and `f`; times in UTC with microseconds, `2026-11-23T16:40:15.000123+00:00`. One
stream field instead of one per event field: the consumer reads five objects per
entry instead of thirty-seven, splits one line, and hands PostgreSQL the lines as
they came. A later format takes another field name.
"""

from __future__ import annotations

import random
import re
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from operator import itemgetter
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

EXECUTIONS_STREAM = "veil:executions"


def new_event_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then
    74 random bits. Ordered ids land at the right edge of analytics' primary-key
    index instead of on a random page each (a random id made every insert touch a
    page of its own). From the seeded PRNG, not os.urandom: uuid4() made a syscall
    per call, a visible share of a worker's CPU under load (docs/benchmarks.md); the
    id needs uniqueness, not secrecy, and the generator is seeded from urandom again
    in each forked worker."""
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


@dataclass(frozen=True)
class Chars:
    """The most characters a text field holds (its column's length)."""

    length: int


@dataclass(frozen=True)
class Bits:
    """The width of an integer field, signed: 16, 32 or 64 (its column's type)."""

    bits: int


@dataclass(frozen=True)
class ExecutionEvent:
    """One proxied call. A new field goes at the end, with a default (as a dataclass
    wants it there: None for one that may be missing), and into `executions` by a
    migration."""

    event_id: Annotated[str, Chars(36)]
    request_id: Annotated[str, Chars(64)]
    api_id: Annotated[str, Chars(36)]
    deployment_id: Annotated[str | None, Chars(36)]
    caller_id: Annotated[str | None, Chars(36)]
    method: Annotated[str, Chars(10)]
    path: Annotated[str, Chars(2048)]
    status_code: Annotated[int, Bits(32)]
    latency_ms: float  # total time in the data plane, first byte in to last byte out
    upstream_ms: float | None  # time waiting for the container's response headers
    bytes_in: Annotated[int, Bits(64)]
    bytes_out: Annotated[int, Bits(64)]
    started_at: datetime
    # Who paid for the call: set when it came with an API key (None: the owner's token).
    key_id: Annotated[str | None, Chars(36)] = None
    subscription_id: Annotated[str | None, Chars(36)] = None
    version: Annotated[int | None, Bits(32)] = None  # the API version the deployment runs
    gateway_ms: float | None = None  # time in the data plane itself: latency minus upstream

    def values(self) -> tuple[Any, ...]:
        """The fields' values in declaration order (a row of `executions`)."""
        # vars(), not astuple(): no deep copy, on the data plane's path for every call.
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


# ---- the schema: the fields as the codec, the checks and the table see them ----------

Kind = Literal["text", "int", "float", "time", "bool"]
_KINDS: dict[Any, Kind] = {str: "text", int: "int", float: "float", datetime: "time", bool: "bool"}


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    required: bool  # never missing: not None in a line or a row
    bound: int | None = None  # text: the most characters; int: values in [-bound, bound)


def fields_of(cls: type) -> tuple[Field, ...]:
    """The fields of a dataclass annotated as `ExecutionEvent` is: each `str`, `int`,
    `float`, `datetime` or `bool`, `| None` when it may be missing; a text field with
    its `Chars`, an integer field with its `Bits`. TypeError for any other annotation."""
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for field in fields(cls):
        hint: Any = hints[field.name]
        extras: list[Any] = []
        if get_origin(hint) is Annotated:
            hint, *extras = get_args(hint)
        kinds = set(get_args(hint)) if get_origin(hint) in (Union, types.UnionType) else {hint}
        required = type(None) not in kinds
        kinds.discard(type(None))
        kind = _KINDS.get(kinds.pop()) if len(kinds) == 1 else None
        bound: int | None = None
        for extra in extras:
            if isinstance(extra, Chars) and kind == "text" and bound is None:
                bound = extra.length
            elif isinstance(extra, Bits) and kind == "int" and bound is None:
                bound = 2 ** (extra.bits - 1) if extra.bits in (16, 32, 64) else None
            else:
                kind = None
        if kind is None or (bound is None) == (kind in ("text", "int")):
            raise TypeError(f"{cls.__name__}.{field.name}: {hints[field.name]} is not a field")
        out.append(Field(field.name, kind, required, bound))
    return tuple(out)


FIELDS = fields_of(ExecutionEvent)
NAMES = tuple(f.name for f in FIELDS)  # the wire order, the columns of `executions`
INDEX = {name: i for i, name in enumerate(NAMES)}  # a field's position in a line, a row
EVENT_FIELDS = len(FIELDS)  # tab-separated fields of a wire-format line


# ---- the codec ------------------------------------------------------------------------

_NULL = "\\N"
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
_ESCAPED = re.compile(r"\\(.?)")
_BOOLS = {"t": True, "f": False}


def _utc_text(at: datetime) -> str:
    if at.tzinfo is not UTC:  # a naive time is taken as UTC
        at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.isoformat(timespec="microseconds")


def _unescaped(match: re.Match[str]) -> str:
    found = _UNESCAPE.get(match.group(0))
    if found is None:
        raise ValueError(f"escape {match.group(0)!r} is not in the event wire format")
    return found


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError("an event's time has no UTC offset")
    return at


def _bool(text: str) -> bool:
    found = _BOOLS.get(text)
    if found is None:
        raise ValueError(f"{text!r} is not a boolean of the event wire format")
    return found


_READ: dict[Kind, Callable[[str], Any]] = {"int": int, "float": float, "time": _time, "bool": _bool}
# How a value of each kind is written (`{}`: the value, not None).
_WRITE: dict[Kind, str] = {
    "text": "{}",
    "int": "str({})",
    "float": "str({})",
    "time": "_utc_text({})",
    "bool": "('t' if {} else 'f')",
}

Encoder = Callable[[Sequence[Any]], bytes]
Decoder = Callable[[bytes | str], tuple[Any, ...]]


def _joiner(schema: Sequence[Field], *, escaped: bool) -> Callable[[Sequence[Any]], str]:
    """A function that writes the values of the fields as a line (`escaped`: escaping
    every value; otherwise none): one expression per field, written out from the schema
    and compiled once, as dataclasses writes __init__. A loop over the fields' writers
    cost the data plane a fifth more per event than the join written out by hand."""
    names = [f"v{i}" for i in range(len(schema))]
    written = []
    for name, field in zip(names, schema, strict=True):
        value = _WRITE[field.kind].format(name)
        if escaped:
            value = f"{value}.translate(_ESCAPE)"
        written.append(
            f"({value})" if field.required else f"(_NULL if {name} is None else {value})"
        )
    source = (
        "def join(values):\n"
        f"    {', '.join(names)}, = values\n"
        f"    return '\\t'.join(({', '.join(written)},))\n"
    )
    namespace: dict[str, Any] = {"_NULL": _NULL, "_ESCAPE": _ESCAPE, "_utc_text": _utc_text}
    exec(source, namespace)  # noqa: S102  # made above from the schema: no input in it
    join: Callable[[Sequence[Any]], str] = namespace["join"]
    return join


def codec(schema: Sequence[Field]) -> tuple[Encoder, Decoder]:
    """The wire format's writer and reader of lines of these fields (`FIELDS`: the
    event's). Positions are looked up here, once: the reader loops only over the
    fields that need more than the line's split."""
    n = len(schema)
    join, join_escaped = _joiner(schema, escaped=False), _joiner(schema, escaped=True)
    texts = frozenset(i for i, f in enumerate(schema) if f.kind == "text")
    required = [i for i, f in enumerate(schema) if f.required]
    # One C call for the usual line (itemgetter of one index gives the value, not a tuple).
    required_values = itemgetter(*required, *required[:1]) if required else lambda _: ()
    readers = tuple((i, _READ[f.kind]) for i, f in enumerate(schema) if f.kind != "text")

    def encode(values: Sequence[Any]) -> bytes:
        """The line of some values in the fields' order (`ExecutionEvent.values()`, a
        row of `executions`)."""
        line = join(values)
        # Escaping is rare (a path with a tab or a backslash): look for it once, in the
        # whole line, rather than in every field. Every missing value put one backslash in.
        if (
            line.count("\t") != n - 1
            or line.count("\\") != values.count(None)
            or "\n" in line
            or "\r" in line
            or "\x00" in line
        ):
            line = join_escaped(values)
        try:
            return line.encode()
        except UnicodeEncodeError:  # a lone surrogate: PostgreSQL could not store it either
            return line.encode(errors="replace")

    def decode(line: bytes | str) -> tuple[Any, ...]:
        """The values of a line, in the fields' order; ValueError when the line is not
        one (UnicodeDecodeError is a ValueError)."""
        text = line.decode() if isinstance(line, bytes) else line
        parts: list[Any] = text.split("\t")
        if len(parts) != n:
            raise ValueError(f"an event line has {n} fields, not {len(parts)}")
        if text.count("\\") == parts.count(_NULL):  # nothing escaped: the usual line
            parts = [None if value == _NULL else value for value in parts]
        else:
            for i, value in enumerate(parts):
                if value == _NULL:
                    parts[i] = None
                elif "\\" in value:
                    if i not in texts:
                        raise ValueError(f"{schema[i].name} of an event line is not text")
                    parts[i] = _ESCAPED.sub(_unescaped, value)
        if None in required_values(parts):
            missing = [schema[i].name for i in required if parts[i] is None]
            raise ValueError(f"an event line lacks its {', '.join(missing)}")
        for i, read in readers:
            value = parts[i]
            if value is not None:
                parts[i] = read(value)
        return tuple(parts)

    return encode, decode


event_line, line_values = codec(FIELDS)


def build_feed_stream(deployment_id: str) -> str:
    """Redis stream with one deployment's build log and status changes."""
    return f"veil:deployments:{deployment_id}:feed"
