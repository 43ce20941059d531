"""SQL for subscriptions and their API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Api, ApiKey, Plan, Subscription, SubscriptionPlanPeriod, User
from shared.models.base import utcnow


async def has_active(session: AsyncSession, consumer_id: str, api_id: str) -> bool:
    result = await session.execute(
        select(Subscription.id).where(
            Subscription.consumer_id == consumer_id,
            Subscription.api_id == api_id,
            Subscription.status == "active",
        )
    )
    return result.first() is not None


async def list_for_consumer(
    session: AsyncSession, consumer_id: str
) -> Sequence[Row[Subscription, Api, Plan]]:
    result = await session.execute(
        select(Subscription, Api, Plan)
        .join(Api, Api.id == Subscription.api_id)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.consumer_id == consumer_id)
        .order_by(Subscription.created_at.desc(), Subscription.id)
    )
    return result.all()


async def get_for_consumer(
    session: AsyncSession, subscription_id: str, consumer_id: str
) -> Row[Subscription, Api, Plan] | None:
    result = await session.execute(
        select(Subscription, Api, Plan)
        .join(Api, Api.id == Subscription.api_id)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.id == subscription_id, Subscription.consumer_id == consumer_id)
    )
    return result.first()


async def list_for_api(
    session: AsyncSession, api_id: str
) -> Sequence[Row[Subscription, str, Plan]]:
    result = await session.execute(
        select(Subscription, User.email, Plan)
        .join(User, User.id == Subscription.consumer_id)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.api_id == api_id)
        .order_by(Subscription.created_at.desc(), Subscription.id)
    )
    return result.all()


async def list_keys(session: AsyncSession, subscription_id: str) -> Sequence[ApiKey]:
    result = await session.execute(
        select(ApiKey)
        .where(ApiKey.subscription_id == subscription_id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    return result.scalars().all()


async def active_keys(session: AsyncSession, subscription_id: str) -> Sequence[ApiKey]:
    result = await session.execute(
        select(ApiKey).where(ApiKey.subscription_id == subscription_id, ApiKey.revoked_at.is_(None))
    )
    return result.scalars().all()


async def lock_subscription(session: AsyncSession, subscription_id: str) -> None:
    """Hold the subscription's row until the transaction ends: concurrent key creations
    for it then count and insert one after the other (a no-op UPDATE takes the row lock
    on PostgreSQL and the write lock on SQLite, where a SELECT ... FOR UPDATE would not)."""
    await session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(status=Subscription.status)
        .execution_options(synchronize_session=False)
    )


async def count_active_keys(session: AsyncSession, subscription_id: str) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.subscription_id == subscription_id, ApiKey.revoked_at.is_(None))
    )
    return int(result.scalar_one())


async def get_key_for_consumer(
    session: AsyncSession, key_id: str, consumer_id: str
) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.consumer_id == consumer_id)
    )
    return result.scalar_one_or_none()


async def lock(session: AsyncSession, subscription: Subscription) -> None:
    """Hold the subscription until the transaction ends, and reload it. A write comes
    first on purpose: it takes PostgreSQL's row lock and SQLite's database lock alike,
    so two plan changes at once run one after the other."""
    await session.execute(
        update(Subscription)
        .where(Subscription.id == subscription.id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.refresh(subscription)


async def start_plan_period(
    session: AsyncSession, subscription_id: str, plan_id: str, at: datetime
) -> None:
    period = SubscriptionPlanPeriod(subscription_id=subscription_id, plan_id=plan_id, started_at=at)
    session.add(period)
    await session.flush()


async def end_open_plan_period(session: AsyncSession, subscription_id: str, at: datetime) -> None:
    await session.execute(
        update(SubscriptionPlanPeriod)
        .where(
            SubscriptionPlanPeriod.subscription_id == subscription_id,
            SubscriptionPlanPeriod.ended_at.is_(None),
        )
        .values(ended_at=at)
        .execution_options(synchronize_session=False)
    )
