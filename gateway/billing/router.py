"""Billing for people: a subscriber's usage and invoices, a developer's earnings.

The figures come from analytics (service token); this side decides who may see
what. Every invoice is its subscriber's alone: another user's id is a 404.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from analytics.billing.schemas import EarningsOut, InvoiceDetail, InvoiceList, UsageOut
from gateway.billing.quotas import quotas
from gateway.billing.schemas import SubscriptionUsage
from gateway.deps import CurrentUser, Developer, Session, State
from gateway.internal_client import call_service
from gateway.state import GatewayState
from gateway.subscriptions import service as subscriptions

router = APIRouter(tags=["billing"])

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
Period = Annotated[
    str | None, Query(pattern=PERIOD_PATTERN, description="YYYY-MM (UTC); default this month")
]


M = TypeVar("M", bound=BaseModel)


async def analytics(state: GatewayState, model: type[M], path: str, **params: str | None) -> M:
    return await call_service(
        state.services,
        "GET",
        f"{state.settings.analytics_url}/internal/v1/billing{path}",
        state.settings.service_token.get_secret_value(),
        model,
        params={k: v for k, v in params.items() if v is not None},
    )


@router.get("/api/v1/subscriptions/{subscription_id}/usage")
async def usage(
    subscription_id: str, user: CurrentUser, session: Session, state: State
) -> SubscriptionUsage:
    """This month so far: billable calls, included calls, billable beyond them, the amount
    (integer minor units) and the invoice lines; and the daily and monthly quota left,
    as the data plane counts them."""
    subscription, _, plan = await subscriptions.get_for_consumer_or_404(
        session, subscription_id, user
    )
    body = await analytics(state, UsageOut, f"/subscriptions/{subscription.id}/usage")
    left = await quotas(state.redis, subscription.id, plan, body.calls_today, body.calls_this_month)
    return SubscriptionUsage(**dict(body), plan_id=plan.id, quota=left)


@router.get("/api/v1/invoices")
async def list_invoices(user: CurrentUser, state: State) -> InvoiceList:
    """My invoices, every month, newest first: this month's as a draft, earlier ones final."""
    return await analytics(state, InvoiceList, "/invoices", consumer_id=user.id)


InvoiceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,64}$")]  # never a path of its own


@router.get("/api/v1/invoices/{invoice_id}")
async def get_invoice(invoice_id: InvoiceId, user: CurrentUser, state: State) -> InvoiceDetail:
    """One of my invoices with its lines (one per plan segment, plus adjustments)."""
    return await analytics(state, InvoiceDetail, f"/invoices/{invoice_id}", consumer_id=user.id)


@router.get("/api/v1/earnings")
async def earnings(user: Developer, state: State, period: Period = None) -> EarningsOut:
    """What my APIs earned in a month, per API and currency: gross, the platform fee and
    net, in integer minor units. A month still running counts its drafts so far."""
    return await analytics(state, EarningsOut, "/earnings", owner_id=user.id, period=period)
