"""Stream entries to wire-format lines, and the careful reading of a line.

An entry in wire format 1 (shared/events.py) is its line, as it came; an entry
without the format's one field is not an execution event.

`checked_line` is the careful way, for a line the fold could not take as it is
(an escape, a NUL), and for every line of a batch the database refused: it reads
the line into values, checks them against the columns of `executions` (lengths,
integer ranges, finite numbers) and writes the line again.
"""

from __future__ import annotations

from math import isfinite
from typing import Any

from shared.events import EVENT_FIELD, FIELDS, NAMES, event_line, line_values

_FIELD = EVENT_FIELD.encode()
# The text fields and the most characters each takes; the integer fields and their
# bounds; the float fields (the columns of `executions` are made from the same).
_TEXT = tuple((i, f.bound) for i, f in enumerate(FIELDS) if f.kind == "text" and f.bound)
_INTS = tuple((i, f.bound) for i, f in enumerate(FIELDS) if f.kind == "int" and f.bound)
_FLOATS = tuple(i for i, f in enumerate(FIELDS) if f.kind == "float")


def line_of(fields: dict[Any, Any]) -> bytes:
    """One entry's event as a wire-format line; ValueError for an entry that is not an
    execution event."""
    line = fields.get(_FIELD)
    if line is not None:
        return bytes(line)
    text = fields.get(EVENT_FIELD)  # a client that decodes replies
    if text is not None:
        return str(text).encode()
    raise ValueError(f"a stream entry without {EVENT_FIELD!r} is not an execution event")


def checked(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values of an event if `executions` can store them, ValueError otherwise: the
    same tuple, or a copy with NUL characters (which PostgreSQL cannot store) replaced
    by U+FFFD, as the wire format's encoder does."""
    for i, length in _TEXT:
        value = values[i]
        if value is not None and (len(value) > length or "\x00" in value):
            if len(value) > length:
                raise ValueError(f"{NAMES[i]} is longer than {length} characters")
            values = (*values[:i], value.replace("\x00", "\ufffd"), *values[i + 1 :])
    for i, bound in _INTS:
        value = values[i]
        if value is not None and not -bound <= value < bound:
            raise ValueError(f"{NAMES[i]} is out of range")
    for i in _FLOATS:
        value = values[i]
        if value is not None and not isfinite(value):
            raise ValueError(f"{NAMES[i]} is not a finite number")
    return values


def checked_line(line: bytes) -> bytes:
    """The line read carefully, checked and written again; ValueError if it is not an
    event `executions` can store."""
    return event_line(checked(line_values(line)))
