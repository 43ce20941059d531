"""Admin: the platform's revenue, the sum of its fees on every invoice, per month."""

from __future__ import annotations

from fastapi import APIRouter

from analytics.billing.schemas import RevenueOut
from gateway.billing.router import Period, analytics
from gateway.deps import Admin, State

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.get("/revenue")
async def revenue(_admin: Admin, state: State, period: Period = None) -> RevenueOut:
    """Per currency: invoices, gross billed, the platform's fees (its revenue) and what
    the developers earn, in integer minor units; drafts count while the month runs."""
    return await analytics(state, RevenueOut, "/revenue", period=period)
