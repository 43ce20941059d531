from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from shared.events import FIELDS, Field
from shared.models.base import Base, UTCDateTime

# Rollup resolutions, in seconds: minute, hour, day.
MINUTE, HOUR, DAY = 60, 3600, 86400
RESOLUTIONS = (MINUTE, HOUR, DAY)


_INTEGERS: dict[int | None, type[TypeEngine[Any]]] = {
    2**15: SmallInteger,
    2**31: Integer,
    2**63: BigInteger,
}
_OTHERS: dict[str, type[TypeEngine[Any]]] = {"float": Float, "time": UTCDateTime, "bool": Boolean}


def _column_type(field: Field) -> TypeEngine[Any]:
    """The column type of an event field: its kind, and its bound for text and integers."""
    if field.kind == "text":
        return String(field.bound)
    if field.kind == "int":
        return _INTEGERS[field.bound]()
    return _OTHERS[field.kind]()


class Execution(Base):
    """One proxied call, stored exactly once: the event id is the primary key.

    The columns are the execution event's fields (shared/events.py), in their order,
    made from them here: a field is added there, and here only by a migration.
    """

    __table__ = Table(
        "executions",
        Base.metadata,
        *(Column(f.name, _column_type(f), nullable=not f.required) for f in FIELDS),
        PrimaryKeyConstraint("event_id"),
        Index("ix_executions_api_started", "api_id", "started_at"),
        Index("ix_executions_subscription_started", "subscription_id", "started_at"),
        # No index on started_at alone: the retention purge goes API by API through
        # the first (each index costs every stored event; migration 0013).
    )

    # For the type checker only, the columns that code reads as attributes (the
    # mapping is the table's; tests/unit/test_event_schema.py holds these to it).
    event_id: Mapped[str]
    request_id: Mapped[str]
    api_id: Mapped[str]
    deployment_id: Mapped[str | None]
    caller_id: Mapped[str | None]
    method: Mapped[str]
    path: Mapped[str]
    status_code: Mapped[int]
    latency_ms: Mapped[float]
    upstream_ms: Mapped[float | None]
    bytes_in: Mapped[int]
    bytes_out: Mapped[int]
    started_at: Mapped[datetime]
    key_id: Mapped[str | None]
    subscription_id: Mapped[str | None]
    version: Mapped[int | None]
    gateway_ms: Mapped[float | None]


class ExecutionRollup(Base):
    """Counters for the executions of one API in one minute, hour or day.

    One row per (version, subscription, key, status class) seen in the bucket;
    a missing version is 0, a missing subscription or key is "". Written in the
    same transaction as the raw rows (upsert-increment), and kept when the raw
    rows are purged.
    """

    __tablename__ = "execution_rollups"
    __table_args__ = (
        PrimaryKeyConstraint(
            "api_id",
            "resolution_s",
            "bucket_start",
            "version",
            "subscription_id",
            "key_id",
            "status_class",
        ),
    )

    api_id: Mapped[str] = mapped_column(String(36))
    resolution_s: Mapped[int] = mapped_column(Integer)  # 60, 3600 or 86400
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)
    subscription_id: Mapped[str] = mapped_column(String(36))
    key_id: Mapped[str] = mapped_column(String(36))
    status_class: Mapped[int] = mapped_column(Integer)  # status_code // 100
    calls: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    latency_sum: Mapped[float] = mapped_column(Float)
    latency_max: Mapped[float] = mapped_column(Float)
    upstream_calls: Mapped[int] = mapped_column(BigInteger)
    upstream_sum: Mapped[float] = mapped_column(Float)
    gateway_calls: Mapped[int] = mapped_column(BigInteger)
    gateway_sum: Mapped[float] = mapped_column(Float)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiRollup(Base):
    """The same counters per API and status class only: what whole-API stats, their
    time series and the reconciliation read (a few rows per minute, however many
    subscriptions and keys call the API)."""

    __tablename__ = "api_rollups"
    __table_args__ = (
        PrimaryKeyConstraint("api_id", "resolution_s", "bucket_start", "status_class"),
        # The reconciliation reads every API's minutes at once.
        Index("ix_api_rollups_resolution_bucket", "resolution_s", "bucket_start"),
    )

    api_id: Mapped[str] = mapped_column(String(36))
    resolution_s: Mapped[int] = mapped_column(Integer)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime())
    status_class: Mapped[int] = mapped_column(Integer)
    calls: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    latency_sum: Mapped[float] = mapped_column(Float)
    latency_max: Mapped[float] = mapped_column(Float)
    upstream_calls: Mapped[int] = mapped_column(BigInteger)
    upstream_sum: Mapped[float] = mapped_column(Float)
    gateway_calls: Mapped[int] = mapped_column(BigInteger)
    gateway_sum: Mapped[float] = mapped_column(Float)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LatencyRollup(Base):
    """A latency histogram of one API in one minute, hour or day: one row per non-empty bucket.

    `metric` is "t" (total), "u" (upstream) or "g" (gateway); `bucket` indexes
    the fixed log-spaced bounds of analytics.stats.histogram.
    """

    __tablename__ = "latency_rollups"
    __table_args__ = (
        # The metric before the time: one metric's histograms over a window are adjacent.
        PrimaryKeyConstraint("api_id", "resolution_s", "metric", "bucket_start", "bucket"),
    )

    api_id: Mapped[str] = mapped_column(String(36))
    resolution_s: Mapped[int] = mapped_column(Integer)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime())
    metric: Mapped[str] = mapped_column(String(1))
    bucket: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(BigInteger)
