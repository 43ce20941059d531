from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, UTCDateTime


class Execution(Base):
    """One proxied call, stored exactly once: the event id is the primary key."""

    __tablename__ = "executions"
    __table_args__ = (Index("ix_executions_api_started", "api_id", "started_at"),)

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    api_id: Mapped[str] = mapped_column(String(36))
    deployment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    caller_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    upstream_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    subscription_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gateway_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
