from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, utcnow


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))  # developer | consumer | admin
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set by an admin: no login, no control plane, no API keys, every API suspended.
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    suspended_by: Mapped[str | None] = mapped_column(String(36), nullable=True)  # admin id
    suspension_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None


class RefreshToken(IdMixin, Base):
    """One refresh token; only its SHA-256 is stored.

    Tokens of one login form a family: using a token rotates it, and using an
    already-rotated token revokes the whole family (theft detection).
    """

    __tablename__ = "refresh_tokens"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
