"""The execution event is defined once: the wire order, the COPY columns and the table agree,
and every kind of field goes through a line and back."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import pytest
from sqlalchemy import BigInteger, Boolean, Float, Integer, SmallInteger, String

from analytics.ingest import repository
from analytics.ingest.statements import ROLLUP_TABLES
from shared.events import (
    FIELDS,
    INDEX,
    NAMES,
    Bits,
    Chars,
    ExecutionEvent,
    codec,
    event_line,
    fields_of,
    line_values,
)
from shared.models import Base, Execution
from shared.models.base import UTCDateTime

T0 = datetime(2026, 3, 1, 23, 58, 7, 123456, tzinfo=UTC)


def test_the_wire_the_copy_and_the_table_have_one_order() -> None:
    wire = tuple(f.name for f in dataclasses.fields(ExecutionEvent))
    assert wire == NAMES
    assert tuple(repository.COLUMNS) == wire  # the columns the ingest path COPYs
    assert tuple(c.name for c in Execution.__table__.columns) == wire
    assert [c.name for c in Execution.__table__.primary_key] == ["event_id"]
    # A line holds each field where INDEX says.
    values: dict[str, Any] = {
        f.name: f"t-{f.name}" if f.kind == "text" else i if f.kind == "int" else None
        for i, f in enumerate(FIELDS)
    }
    e = ExecutionEvent(**{**values, "latency_ms": 1.5, "started_at": T0})
    parts = e.to_line().split(b"\t")
    assert len(parts) == len(wire)
    for name, value in values.items():
        if isinstance(value, str):
            assert parts[INDEX[name]] == value.encode()
        elif isinstance(value, int):
            assert parts[INDEX[name]] == str(value).encode()
    assert parts[INDEX["started_at"]] == b"2026-03-01T23:58:07.123456+00:00"


_COLUMN_TYPES: dict[str, Any] = {"float": Float, "time": UTCDateTime, "bool": Boolean}
_INTEGERS: dict[int, Any] = {2**15: SmallInteger, 2**31: Integer, 2**63: BigInteger}


def test_the_columns_have_the_fields_kinds_bounds_and_nullability() -> None:
    for f in FIELDS:
        column = Execution.__table__.c[f.name]
        assert column.nullable is not f.required, f.name
        if f.kind == "text":
            assert isinstance(column.type, String)
            assert column.type.length == f.bound, f.name
        elif f.kind == "int":
            assert f.bound is not None
            assert type(column.type) is _INTEGERS[f.bound], f.name
        else:
            assert isinstance(column.type, _COLUMN_TYPES[f.kind]), f.name


_PYTHON = {"text": "str", "int": "int", "float": "float", "time": "datetime", "bool": "bool"}


def test_the_models_typed_attributes_are_its_columns() -> None:
    """The model's annotations are for the type checker only; they must say what the
    columns (the event's fields) are."""
    annotations = Execution.__annotations__
    assert annotations, "no typed attributes"
    for name, annotation in annotations.items():
        f = FIELDS[INDEX[name]]
        optional = "" if f.required else " | None"
        assert annotation == f"Mapped[{_PYTHON[f.kind]}{optional}]", name


def test_the_rollup_upserts_write_every_column_of_their_tables() -> None:
    for table in ROLLUP_TABLES:
        model = Base.metadata.tables[table.name]
        assert set(table.columns) == {c.name for c in model.columns}, table.name
        assert len(table.columns) == len(model.columns), table.name
        assert table.key == tuple(c.name for c in model.primary_key), table.name


@dataclasses.dataclass(frozen=True)
class EveryKind:
    """A schema with a field of every kind, required and not."""

    text: Annotated[str, Chars(20)]
    number: Annotated[int, Bits(64)]
    small: Annotated[int, Bits(16)]
    ratio: float
    at: datetime
    flag: bool
    maybe_text: Annotated[str | None, Chars(20)] = None
    maybe_number: Annotated[int | None, Bits(32)] = None
    maybe_ratio: float | None = None
    maybe_at: datetime | None = None
    maybe_flag: bool | None = None


def test_every_kind_goes_through_a_line_and_back() -> None:
    schema = fields_of(EveryKind)
    assert [(f.kind, f.required, f.bound) for f in schema] == [
        ("text", True, 20),
        ("int", True, 2**63),
        ("int", True, 2**15),
        ("float", True, None),
        ("time", True, None),
        ("bool", True, None),
        ("text", False, 20),
        ("int", False, 2**31),
        ("float", False, None),
        ("time", False, None),
        ("bool", False, None),
    ]
    write, read = codec(schema)
    plus_two = timezone(timedelta(hours=2))
    for row in (
        EveryKind("a", -(2**63), 7, 0.1, T0, True),
        EveryKind("t\tab\\N\n", 2**63 - 1, -(2**15), -1e300, T0, False, "", 0, 0.0, T0, False),
        EveryKind("\\", 0, 0, 12.5, T0.astimezone(plus_two), True, "\\N", -1, 1e-9, T0, True),
    ):
        values = tuple(vars(row).values())
        line = write(values)
        assert line.count(b"\t") == len(schema) - 1
        assert read(line) == values
        assert read(line.decode()) == values
        assert read(line)[4].utcoffset() == timedelta(0)  # written in UTC
    line = write(tuple(vars(EveryKind("a", 1, 2, 0.5, T0, True, maybe_flag=False)).values()))
    assert line.split(b"\t")[5] == b"t"
    assert line.split(b"\t")[10] == b"f"
    for broken in (b"maybe", b"1", b"True", b"\\N"):  # booleans are t and f; this one is required
        parts = line.split(b"\t")
        parts[5] = broken
        with pytest.raises(ValueError):  # noqa: PT011  # many reasons, one exception
            read(b"\t".join(parts))


def test_the_events_codec_is_the_schemas() -> None:
    e = ExecutionEvent(
        event_id="e-1",
        request_id="r-1",
        api_id="api-1",
        deployment_id=None,
        caller_id="c-1",
        method="GET",
        path="/x",
        status_code=200,
        latency_ms=1.25,
        upstream_ms=None,
        bytes_in=1,
        bytes_out=2,
        started_at=T0,
    )
    write, read = codec(FIELDS)
    assert write(e.values()) == event_line(e.values()) == e.to_line()
    assert read(e.to_line()) == line_values(e.to_line()) == e.values()


def test_annotations_that_are_not_fields_are_refused() -> None:
    @dataclasses.dataclass
    class NoLength:
        name: str

    @dataclasses.dataclass
    class LengthOnANumber:
        count: Annotated[int, Chars(3)]

    @dataclasses.dataclass
    class OddWidth:
        count: Annotated[int, Bits(8)]

    @dataclasses.dataclass
    class TwoTypes:
        value: Annotated[int | str, Bits(32)]

    @dataclasses.dataclass
    class NotAKind:
        items: list[str]

    for schema in (NoLength, LengthOnANumber, OddWidth, TwoTypes, NotAKind):
        with pytest.raises(TypeError, match="is not a field"):
            fields_of(schema)
