"""The marketplace: an API's plans, consumers' subscriptions to them, and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, IdMixin, TimestampMixin, UTCDateTime

SUBSCRIPTION_STATUSES = ("active", "cancelled")


class Plan(IdMixin, TimestampMixin, Base):
    """What a subscriber pays and may use. A null limit or quota means unlimited.

    Prices are integer minor units (cents) per 1,000 calls, after the calls the
    plan includes each month. A plan with subscriptions is archived, never deleted:
    its subscribers keep it, nobody new can pick it.
    """

    __tablename__ = "plans"

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    price_per_1000_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")  # ISO 4217
    included_calls_per_month: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_per_second: Mapped[int | None] = mapped_column(Integer, nullable=True)
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    daily_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    monthly_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def is_free(self) -> bool:
        return self.price_per_1000_minor == 0


class Subscription(IdMixin, TimestampMixin, Base):
    __tablename__ = "subscriptions"
    # One active subscription per consumer and API, enforced by the database too
    # (a partial unique index: cancelled rows stay as history).
    __table_args__ = (
        Index(
            "uq_subscriptions_active_consumer_api",
            "consumer_id",
            "api_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    api_id: Mapped[str] = mapped_column(ForeignKey("apis.id", ondelete="CASCADE"), index=True)
    # No ON DELETE: a plan with subscriptions cannot go (it is archived instead);
    # deleting the API removes both in one statement.
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    consumer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(IdMixin, TimestampMixin, Base):
    """One key of a subscription; only its SHA-256 is stored.

    `consumer_id` and `api_id` repeat the subscription's so that the data plane
    resolves a key with one indexed lookup on `key_hash`.
    """

    __tablename__ = "api_keys"

    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    consumer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    api_id: Mapped[str] = mapped_column(ForeignKey("apis.id", ondelete="CASCADE"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
