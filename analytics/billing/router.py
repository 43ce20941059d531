"""Internal billing endpoints (service token). The gateway decides who may see what
and passes the user's id; these endpoints trust it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from analytics.billing import reports, service
from analytics.billing.schemas import (
    CloseOut,
    EarningsOut,
    InvoiceDetail,
    InvoiceList,
    RevenueOut,
    UsageOut,
)
from analytics.deps import Session, State
from shared.http.service_auth import ServiceOnly

router = APIRouter(prefix="/internal/v1/billing", tags=["billing"])

PeriodQuery = Annotated[str | None, Query(description="YYYY-MM (UTC); default this month")]


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("/subscriptions/{subscription_id}/usage")
async def usage(subscription_id: str, _auth: ServiceOnly, session: Session) -> UsageOut:
    return await reports.usage(session, subscription_id, _now())


@router.get("/invoices")
async def invoices(_auth: ServiceOnly, state: State, consumer_id: str = Query()) -> InvoiceList:
    return await reports.invoices_of(
        state.sessions, consumer_id, now=_now(), fee_bps=state.settings.platform_fee_bps
    )


@router.get("/invoices/{invoice_id}")
async def invoice(
    invoice_id: str, _auth: ServiceOnly, state: State, consumer_id: str = Query()
) -> InvoiceDetail:
    return await reports.invoice_of(
        state.sessions,
        invoice_id,
        consumer_id,
        now=_now(),
        fee_bps=state.settings.platform_fee_bps,
    )


@router.get("/earnings")
async def earnings(
    _auth: ServiceOnly,
    state: State,
    session: Session,
    owner_id: str = Query(),
    period: PeriodQuery = None,
) -> EarningsOut:
    return await reports.earnings(
        session, owner_id, period or service.period_of(_now()), state.settings.platform_fee_bps
    )


@router.get("/revenue")
async def revenue(_auth: ServiceOnly, session: Session, period: PeriodQuery = None) -> RevenueOut:
    return await reports.revenue(session, period or service.period_of(_now()))


@router.post("/periods/{period}/close")
async def close(period: str, _auth: ServiceOnly, state: State) -> CloseOut:
    """Finalize a month that is over now (the billing job does it by itself)."""
    report = await service.close_period(
        state.sessions, period, now=_now(), fee_bps=state.settings.platform_fee_bps
    )
    return CloseOut(
        period=report.period,
        finalized=report.finalized,
        already_final=report.already_final,
        empty=report.empty,
    )
