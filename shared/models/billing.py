"""Billing: which plan a subscription was on when, and invoices per subscription and month.

Money is integer minor units (cents) everywhere; no float ever touches an amount.
Invoices and their lines carry plain ids, not foreign keys to the API, the plan or
the subscription: an invoice is a record that outlives what it bills (like an
execution). A final invoice never changes: `_refuse_final_changes` below stops any
ORM update of one, whatever code path tries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from shared.models.base import Base, IdMixin, TimestampMixin, UTCDateTime

INVOICE_STATUSES = ("draft", "final")
LINE_KINDS = ("plan", "adjustment")


class SubscriptionPlanPeriod(IdMixin, Base):
    """One stretch of time a subscription spent on one plan; `ended_at` null while it lasts.

    Subscribing opens the first period, a plan change ends the open one and opens
    the next at the same instant, cancelling ends the last one.
    """

    __tablename__ = "subscription_plan_periods"
    __table_args__ = (
        Index("ix_subscription_plan_periods_subscription_started", "subscription_id", "started_at"),
    )

    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    # A plan that was ever used is archived, never deleted, so this cascade only runs
    # when the API goes with its plans and subscriptions. (Without it PostgreSQL checks
    # this key before the cascade through subscriptions has removed the row.)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Invoice(IdMixin, TimestampMixin, Base):
    """One subscription's bill for one calendar month (UTC), `period` "YYYY-MM".

    A draft while the month runs (recomputed from the calls), final once the
    period is closed. `total_minor` is the sum of the lines; `fee_minor` is the
    platform's share of it at `fee_bps` basis points; the API's owner earns the rest.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("subscription_id", "period"),
        Index("ix_invoices_period_status", "period", "status"),
    )

    subscription_id: Mapped[str] = mapped_column(String(36))
    consumer_id: Mapped[str] = mapped_column(String(36), index=True)
    api_id: Mapped[str] = mapped_column(String(36))
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(10), default="draft")
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_bps: Mapped[int] = mapped_column(Integer, default=0)
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class InvoiceLine(IdMixin, Base):
    """One plan segment of an invoice (`kind` "plan"), or calls of the previous period
    that arrived after it was closed (`kind` "adjustment", `adjusts_period` set).

    Terms are copied from the plan when the line is computed, so a final line
    keeps the price it was billed at whatever happens to the plan later.
    """

    __tablename__ = "invoice_lines"

    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12), default="plan")
    adjusts_period: Mapped[str | None] = mapped_column(String(7), nullable=True)
    plan_id: Mapped[str] = mapped_column(String(36))
    plan_name: Mapped[str] = mapped_column(String(60))
    segment_start: Mapped[datetime] = mapped_column(UTCDateTime())
    segment_end: Mapped[datetime] = mapped_column(UTCDateTime())
    calls: Mapped[int] = mapped_column(BigInteger)
    included: Mapped[int] = mapped_column(BigInteger)
    billable: Mapped[int] = mapped_column(BigInteger)
    price_per_1000_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class FinalInvoiceChanged(RuntimeError):
    """Something tried to change a final invoice: a bug, never a user error."""


@event.listens_for(Invoice, "before_update")
def _refuse_final_changes(
    _mapper: Mapper[Invoice], _connection: Connection, target: Invoice
) -> None:
    history = inspect(target).attrs.status.history
    if "final" in (*history.unchanged, *history.deleted):
        raise FinalInvoiceChanged(f"invoice {target.id} is final and cannot change")


@event.listens_for(Invoice, "before_delete")
def _refuse_final_deletes(
    _mapper: Mapper[Invoice], _connection: Connection, target: Invoice
) -> None:
    if target.status == "final":
        raise FinalInvoiceChanged(f"invoice {target.id} is final and cannot be deleted")
