"""The read side of billing: usage so far, a consumer's invoices, earnings, revenue."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.billing import repository, service
from analytics.billing.schemas import (
    ApiEarnings,
    EarningsOut,
    InvoiceDetail,
    InvoiceList,
    InvoiceSummary,
    LineOut,
    RevenueOut,
    Totals,
    UsageOut,
)
from shared.errors import NotFound
from shared.models import Invoice, InvoiceLine


def _line_out(line: service.Line | InvoiceLine) -> LineOut:
    return LineOut(
        kind=line.kind,
        adjusts_period=line.adjusts_period,
        plan_id=line.plan_id,
        plan_name=line.plan_name,
        segment_start=line.segment_start,
        segment_end=line.segment_end,
        calls=line.calls,
        included=line.included,
        billable=line.billable,
        price_per_1000_minor=line.price_per_1000_minor,
        currency=line.currency,
        amount_minor=line.amount_minor,
    )


def _summary(invoice: Invoice, api_name: str | None) -> InvoiceSummary:
    return InvoiceSummary(
        id=invoice.id,
        subscription_id=invoice.subscription_id,
        api_id=invoice.api_id,
        api_name=api_name,
        period=invoice.period,
        status=invoice.status,
        currency=invoice.currency,
        total_minor=invoice.total_minor,
        finalized_at=invoice.finalized_at,
        updated_at=invoice.updated_at,
    )


async def usage(session: AsyncSession, subscription_id: str, now: datetime) -> UsageOut:
    period = service.period_of(now)
    start, end = service.period_bounds(period)
    api_id = await repository.api_of(session, subscription_id) or ""
    lines = await service.build_lines(session, subscription_id, api_id, period)
    plan_lines = [line for line in lines if line.kind == "plan"]
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return UsageOut(
        subscription_id=subscription_id,
        period=period,
        period_start=start,
        period_end=end,
        currency=service.invoice_currency(lines) if lines else None,
        calls=sum(line.calls for line in plan_lines),
        included=sum(line.included for line in plan_lines),
        billable=sum(line.billable for line in plan_lines),
        amount_minor=sum(line.amount_minor for line in lines),
        lines=[_line_out(line) for line in lines],
        calls_today=await repository.calls_between(
            session, api_id, subscription_id, day_start, day_start + timedelta(days=1)
        ),
        calls_this_month=await repository.calls_between(
            session, api_id, subscription_id, start, end
        ),
    )


async def invoices_of(
    sessions: async_sessionmaker[AsyncSession], consumer_id: str, *, now: datetime, fee_bps: int
) -> InvoiceList:
    """Every invoice of the consumer, newest month first; this month's drafts are
    brought up to date first."""
    period = service.period_of(now)
    await service.refresh_drafts(
        sessions, period, now=now, fee_bps=fee_bps, consumer_id=consumer_id
    )
    async with sessions() as session:
        rows = await repository.invoices_of_consumer(session, consumer_id)
    return InvoiceList(items=[_summary(invoice, name) for invoice, name in rows])


async def invoice_of(
    sessions: async_sessionmaker[AsyncSession],
    invoice_id: str,
    consumer_id: str,
    *,
    now: datetime,
    fee_bps: int,
) -> InvoiceDetail:
    """One of the consumer's invoices with its lines; someone else's is a 404."""
    async with sessions() as session:
        row = await repository.invoice_of_consumer(session, invoice_id, consumer_id)
    if row is None:
        raise NotFound("No invoice with this id.", code="invoice_not_found")
    if row[0].status == "draft":
        await service.sync_invoice(
            sessions,
            row[0].subscription_id,
            row[0].period,
            now=now,
            fee_bps=fee_bps,
            finalize=False,
        )
    async with sessions() as session:
        row = await repository.invoice_of_consumer(session, invoice_id, consumer_id)
        if row is None:  # a draft left with nothing to bill is removed
            raise NotFound("No invoice with this id.", code="invoice_not_found")
        invoice, api_name = row
        lines = await repository.lines_of(session, invoice.id)
    return InvoiceDetail(
        **_summary(invoice, api_name).model_dump(), lines=[_line_out(line) for line in lines]
    )


def _totals(currency: str, invoices: int, drafts: int, gross: int, fee: int) -> Totals:
    return Totals(
        currency=currency,
        invoices=int(invoices),
        draft_invoices=int(drafts),
        gross_minor=int(gross),
        fee_minor=int(fee),
        net_minor=int(gross) - int(fee),
    )


def _per_currency(rows: Iterable[Totals]) -> list[Totals]:
    by_currency: dict[str, list[int]] = {}
    for row in rows:
        sums = by_currency.setdefault(row.currency, [0, 0, 0, 0])
        for i, value in enumerate(
            (row.invoices, row.draft_invoices, row.gross_minor, row.fee_minor)
        ):
            sums[i] += value
    return [_totals(currency, *sums) for currency, sums in sorted(by_currency.items())]


async def earnings(session: AsyncSession, owner_id: str, period: str, fee_bps: int) -> EarningsOut:
    service.parse_period(period)
    items = [
        ApiEarnings(
            api_id=api_id,
            api_name=api_name,
            **_totals(currency, count, drafts, gross, fee).model_dump(),
        )
        for api_id, api_name, currency, count, drafts, gross, fee in await repository.earnings(
            session, owner_id, period
        )
    ]
    return EarningsOut(period=period, fee_bps=fee_bps, items=items, totals=_per_currency(items))


async def revenue(session: AsyncSession, period: str) -> RevenueOut:
    service.parse_period(period)
    rows = await repository.revenue(session, period)
    return RevenueOut(period=period, items=[_totals(*row) for row in rows])
