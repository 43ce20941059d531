"""SQL for billing: calls per subscription, plan periods, invoices and their lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.stats.repository import in_ranges
from analytics.stats.windows import cover
from shared.models import (
    Api,
    Invoice,
    InvoiceLine,
    Plan,
    Subscription,
    SubscriptionPlanPeriod,
)
from shared.models.base import new_id, utcnow
from shared.models.billing import FinalInvoiceChanged
from shared.models.execution import MINUTE, ExecutionRollup


async def calls_between(
    session: AsyncSession, api_id: str, subscription_id: str, start: datetime, end: datetime
) -> int:
    """Billable calls of a subscription (of the API `api_id`) in the whole minutes
    [start, end): the calls the gateway forwarded to the API, whatever the API
    answered. The gateway's own refusals (bad key, limits, API down, timeouts) have no
    upstream time and are not billed.

    Read from the per-minute, hour and day rollups (their `upstream_calls`), which are
    kept for good: raw executions purged at the end of their retention change nothing.
    The one place that counts calls for billing.
    """
    if start.timestamp() % MINUTE or end.timestamp() % MINUTE:
        raise ValueError("calls are counted in whole minutes")
    ranges = cover(start, end)
    if not ranges:
        return 0
    result = await session.execute(
        select(func.coalesce(func.sum(ExecutionRollup.upstream_calls), 0)).where(
            ExecutionRollup.api_id == api_id,
            ExecutionRollup.subscription_id == subscription_id,
            in_ranges(ExecutionRollup, ranges),
        )
    )
    return int(result.scalar_one())


async def api_of(session: AsyncSession, subscription_id: str) -> str | None:
    result = await session.execute(
        select(Subscription.api_id).where(Subscription.id == subscription_id)
    )
    return result.scalar_one_or_none()


@dataclass(frozen=True)
class Subject:
    """Who an invoice is between: the subscriber, the API and its owner."""

    subscription_id: str
    consumer_id: str
    api_id: str
    owner_id: str


async def subject(session: AsyncSession, subscription_id: str) -> Subject | None:
    result = await session.execute(
        select(Subscription.consumer_id, Subscription.api_id, Api.owner_id)
        .join(Api, Api.id == Subscription.api_id)
        .where(Subscription.id == subscription_id)
    )
    row = result.first()
    if row is None:
        return None
    return Subject(subscription_id, row[0], row[1], row[2])


async def plan_periods(
    session: AsyncSession, subscription_id: str, start: datetime, end: datetime
) -> Sequence[Row[SubscriptionPlanPeriod, Plan]]:
    """The subscription's plan periods that overlap [start, end), oldest first."""
    result = await session.execute(
        select(SubscriptionPlanPeriod, Plan)
        .join(Plan, Plan.id == SubscriptionPlanPeriod.plan_id)
        .where(
            SubscriptionPlanPeriod.subscription_id == subscription_id,
            SubscriptionPlanPeriod.started_at < end,
            or_(SubscriptionPlanPeriod.ended_at.is_(None), SubscriptionPlanPeriod.ended_at > start),
        )
        .order_by(SubscriptionPlanPeriod.started_at, SubscriptionPlanPeriod.id)
    )
    return result.all()


async def subscriptions_to_bill(
    session: AsyncSession,
    period: str,
    start: datetime,
    end: datetime,
    previous: str,
    consumer_id: str | None = None,
) -> set[str]:
    """Subscriptions that may have an invoice for `period`: on a plan during it, with a
    final invoice the month before (late calls become adjustments), or with an invoice
    for it already (its subscription may be gone)."""
    on_a_plan = (
        select(SubscriptionPlanPeriod.subscription_id)
        .join(Subscription, Subscription.id == SubscriptionPlanPeriod.subscription_id)
        .where(
            SubscriptionPlanPeriod.started_at < end,
            or_(SubscriptionPlanPeriod.ended_at.is_(None), SubscriptionPlanPeriod.ended_at > start),
        )
    )
    billed_before = select(Invoice.subscription_id).where(
        Invoice.period == previous, Invoice.status == "final"
    )
    invoiced = select(Invoice.subscription_id).where(Invoice.period == period)
    if consumer_id is not None:
        on_a_plan = on_a_plan.where(Subscription.consumer_id == consumer_id)
        billed_before = billed_before.where(Invoice.consumer_id == consumer_id)
        invoiced = invoiced.where(Invoice.consumer_id == consumer_id)
    ids: set[str] = set()
    for query in (on_a_plan, billed_before, invoiced):
        ids.update((await session.execute(query)).scalars().all())
    return ids


async def final_subscriptions(session: AsyncSession, period: str) -> set[str]:
    result = await session.execute(
        select(Invoice.subscription_id).where(Invoice.period == period, Invoice.status == "final")
    )
    return set(result.scalars().all())


async def open_periods_before(session: AsyncSession, period: str) -> list[str]:
    """Earlier months that still have draft invoices (the job was down at their end)."""
    result = await session.execute(
        select(Invoice.period)
        .where(Invoice.status == "draft", Invoice.period < period)
        .distinct()
        .order_by(Invoice.period)
    )
    return list(result.scalars().all())


async def get_invoice(session: AsyncSession, subscription_id: str, period: str) -> Invoice | None:
    result = await session.execute(
        select(Invoice)
        .where(Invoice.subscription_id == subscription_id, Invoice.period == period)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def lock_invoice(session: AsyncSession, subscription_id: str, period: str) -> Invoice | None:
    """The invoice, locked until the transaction ends (PostgreSQL; SQLite holds the
    database write lock from the first write of the transaction instead)."""
    result = await session.execute(
        select(Invoice)
        .where(Invoice.subscription_id == subscription_id, Invoice.period == period)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def ensure_invoice(session: AsyncSession, who: Subject, period: str, currency: str) -> None:
    """Create the draft unless it exists. The first write of the transaction: concurrent
    creators wait for each other instead of failing on the unique constraint."""
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(),
        "subscription_id": who.subscription_id,
        "consumer_id": who.consumer_id,
        "api_id": who.api_id,
        "owner_id": who.owner_id,
        "period": period,
        "status": "draft",
        "currency": currency,
        "total_minor": 0,
        "fee_bps": 0,
        "fee_minor": 0,
        "created_at": now,
        "updated_at": now,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(Invoice)
        .values(values)
        .on_conflict_do_nothing(index_elements=["subscription_id", "period"])
    )


async def replace_lines(
    session: AsyncSession, invoice: Invoice, lines: Sequence[InvoiceLine]
) -> None:
    if invoice.status != "draft":
        raise FinalInvoiceChanged(f"invoice {invoice.id} is {invoice.status}: its lines stay")
    await session.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id))
    for position, line in enumerate(lines):
        line.invoice_id = invoice.id
        line.position = position
        session.add(line)
    await session.flush()


async def lines_of(session: AsyncSession, invoice_id: str) -> Sequence[InvoiceLine]:
    result = await session.execute(
        select(InvoiceLine)
        .where(InvoiceLine.invoice_id == invoice_id)
        .order_by(InvoiceLine.position, InvoiceLine.id)
    )
    return result.scalars().all()


async def invoices_of_consumer(
    session: AsyncSession, consumer_id: str
) -> Sequence[Row[Invoice, str | None]]:
    result = await session.execute(
        select(Invoice, Api.name)
        .outerjoin(Api, Api.id == Invoice.api_id)
        .where(Invoice.consumer_id == consumer_id)
        .order_by(Invoice.period.desc(), Invoice.created_at.desc(), Invoice.id)
    )
    return result.all()


async def invoice_of_consumer(
    session: AsyncSession, invoice_id: str, consumer_id: str
) -> Row[Invoice, str | None] | None:
    result = await session.execute(
        select(Invoice, Api.name)
        .outerjoin(Api, Api.id == Invoice.api_id)
        .where(Invoice.id == invoice_id, Invoice.consumer_id == consumer_id)
        .execution_options(populate_existing=True)
    )
    return result.first()


def _sums() -> tuple[Any, ...]:
    return (
        func.count(),
        func.coalesce(func.sum(case((Invoice.status == "draft", 1), else_=0)), 0),
        func.coalesce(func.sum(Invoice.total_minor), 0),
        func.coalesce(func.sum(Invoice.fee_minor), 0),
    )


async def earnings(session: AsyncSession, owner_id: str, period: str) -> list[tuple[Any, ...]]:
    """Per API and currency: api_id, api name, currency, invoices, drafts, gross, fee."""
    result = await session.execute(
        select(Invoice.api_id, func.max(Api.name), Invoice.currency, *_sums())
        .outerjoin(Api, Api.id == Invoice.api_id)
        .where(Invoice.owner_id == owner_id, Invoice.period == period)
        .group_by(Invoice.api_id, Invoice.currency)
        .order_by(Invoice.api_id, Invoice.currency)
    )
    return [tuple(row) for row in result.all()]


async def revenue(session: AsyncSession, period: str) -> list[tuple[Any, ...]]:
    """Per currency: currency, invoices, drafts, gross, fee."""
    result = await session.execute(
        select(Invoice.currency, *_sums())
        .where(Invoice.period == period)
        .group_by(Invoice.currency)
        .order_by(Invoice.currency)
    )
    return [tuple(row) for row in result.all()]
