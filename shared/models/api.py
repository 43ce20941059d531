from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, IdMixin, TimestampMixin, UTCDateTime

# Why an API is suspended: an admin suspended it ("api"), or its owner ("owner"). Lifting
# the owner's suspension lifts only the second kind.
SUSPENSION_CAUSES = ("api", "owner")


class Api(IdMixin, TimestampMixin, Base):
    __tablename__ = "apis"

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(10), default="private")  # public | private
    # The deployment the data plane routes to; switched in one UPDATE so that
    # a redeploy moves traffic atomically.
    active_deployment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # Per-API runtime settings; None means the platform default. Used from the
    # next deploy; bounded by admin-set maximums at the gateway.
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpus: Mapped[float | None] = mapped_column(Float, nullable=True)
    timeout_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Calls in flight at once; more are refused with 429 by the data plane.
    max_concurrency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The largest answer the data plane relays for it; None: the platform's maximum.
    max_response_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")
    # Set by an admin: not deployable by its owner, off the marketplace, refused (403)
    # by the data plane.
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    suspended_by: Mapped[str | None] = mapped_column(String(36), nullable=True)  # admin id
    suspension_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    suspension_cause: Mapped[str | None] = mapped_column(String(10), nullable=True)

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None


class ApiVersion(IdMixin, TimestampMixin, Base):
    """One immutable upload. The bytes live in the blob store under `sha256`."""

    __tablename__ = "api_versions"
    __table_args__ = (UniqueConstraint("api_id", "number"),)

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))
    archive_kind: Mapped[str] = mapped_column(String(10))  # zip | tar | file
    runtime: Mapped[str] = mapped_column(String(20))
    contract: Mapped[str] = mapped_column(String(20))  # server | handler
    entry: Mapped[str] = mapped_column(String(255))
    file_count: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(36))
