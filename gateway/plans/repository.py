"""SQL for plans."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Plan, Subscription, SubscriptionPlanPeriod


async def list_for_api(session: AsyncSession, api_id: str) -> Sequence[Plan]:
    result = await session.execute(
        select(Plan).where(Plan.api_id == api_id).order_by(Plan.created_at, Plan.id)
    )
    return result.scalars().all()


async def active_for_apis(session: AsyncSession, api_ids: Collection[str]) -> Sequence[Plan]:
    """The plans a consumer can pick, of several APIs at once (cheapest first)."""
    if not api_ids:
        return []
    result = await session.execute(
        select(Plan)
        .where(Plan.api_id.in_(api_ids), Plan.archived_at.is_(None))
        .order_by(Plan.price_per_1000_minor, Plan.created_at, Plan.id)
    )
    return result.scalars().all()


async def get(session: AsyncSession, api_id: str, plan_id: str) -> Plan | None:
    result = await session.execute(select(Plan).where(Plan.id == plan_id, Plan.api_id == api_id))
    return result.scalar_one_or_none()


async def count_active(session: AsyncSession, api_id: str) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(Plan)
        .where(Plan.api_id == api_id, Plan.archived_at.is_(None))
    )
    return int(result.scalar_one())


async def has_subscriptions(session: AsyncSession, plan_id: str) -> bool:
    """Any subscription, cancelled ones included, or a subscription that was on the plan
    before changing plans: they are history (and invoices) that point at the plan."""
    result = await session.execute(
        select(Subscription.id).where(Subscription.plan_id == plan_id).limit(1)
    )
    if result.first() is not None:
        return True
    result = await session.execute(
        select(SubscriptionPlanPeriod.id).where(SubscriptionPlanPeriod.plan_id == plan_id).limit(1)
    )
    return result.first() is not None
