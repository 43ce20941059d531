from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, IdMixin, UTCDateTime, utcnow


class AuditEntry(IdMixin, Base):
    """Who did what to which object, for actions taken with platform power (admins)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created_at", "created_at"),)

    actor_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(64))  # e.g. "api.stop", "api.restart"
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(36))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
