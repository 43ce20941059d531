"""Helpers for the billing tests: users, an API, plans, subscriptions and calls stored
straight into the database (raw rows and rollups) at chosen instants, so that months
can be tested whole."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.repository import store_executions
from shared.events import ExecutionEvent
from shared.models import (
    Api,
    Invoice,
    InvoiceLine,
    Plan,
    Subscription,
    SubscriptionPlanPeriod,
    User,
)

Sessions = async_sessionmaker[AsyncSession]


def at(text: str) -> datetime:
    """'2026-03-11T00:00' (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def user(sessions: Sessions, role: str = "developer") -> str:
    async with sessions() as session:
        person = User(
            email=f"{role}-{secrets.token_hex(4)}@example.com", password_hash="x", role=role
        )
        session.add(person)
        await session.commit()
        return person.id


@dataclass
class Shop:
    """An API of one developer with named plans."""

    owner_id: str
    api_id: str
    plans: dict[str, str] = field(default_factory=dict)  # name -> id


async def shop(sessions: Sessions, *plans: dict[str, Any], owner_id: str | None = None) -> Shop:
    owner_id = owner_id or await user(sessions)
    async with sessions() as session:
        api = Api(owner_id=owner_id, name="Meter", slug=f"meter-{secrets.token_hex(4)}")
        session.add(api)
        await session.flush()
        result = Shop(owner_id, api.id)
        for terms in plans:
            plan = Plan(api_id=api.id, **terms)
            session.add(plan)
            await session.flush()
            result.plans[plan.name] = plan.id
        await session.commit()
    return result


async def subscribe_at(
    sessions: Sessions, where: Shop, plan: str, when: datetime, consumer_id: str | None = None
) -> str:
    consumer_id = consumer_id or await user(sessions, "consumer")
    async with sessions() as session:
        subscription = Subscription(
            api_id=where.api_id,
            plan_id=where.plans[plan],
            consumer_id=consumer_id,
            created_at=when,
        )
        session.add(subscription)
        await session.flush()
        session.add(
            SubscriptionPlanPeriod(
                subscription_id=subscription.id, plan_id=where.plans[plan], started_at=when
            )
        )
        await session.commit()
        return subscription.id


async def _end_open_period(session: AsyncSession, subscription_id: str, when: datetime) -> None:
    await session.execute(
        update(SubscriptionPlanPeriod)
        .where(
            SubscriptionPlanPeriod.subscription_id == subscription_id,
            SubscriptionPlanPeriod.ended_at.is_(None),
        )
        .values(ended_at=when)
    )


async def change_at(sessions: Sessions, subscription_id: str, plan_id: str, when: datetime) -> None:
    """What the change-plan endpoint does, at a chosen instant."""
    async with sessions() as session:
        await _end_open_period(session, subscription_id, when)
        session.add(
            SubscriptionPlanPeriod(
                subscription_id=subscription_id, plan_id=plan_id, started_at=when
            )
        )
        await session.execute(
            update(Subscription).where(Subscription.id == subscription_id).values(plan_id=plan_id)
        )
        await session.commit()


async def cancel_at(sessions: Sessions, subscription_id: str, when: datetime) -> None:
    async with sessions() as session:
        await _end_open_period(session, subscription_id, when)
        await session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id)
            .values(status="cancelled", cancelled_at=when)
        )
        await session.commit()


async def calls(
    sessions: Sessions,
    subscription_id: str,
    when: datetime,
    count: int,
    *,
    status: int = 200,
    forwarded: bool = True,
) -> None:
    """`count` calls of the subscription, a millisecond apart from `when`, stored as
    analytics stores them: raw executions and their rollups, in one transaction.
    `forwarded=False` is the gateway answering by itself (no upstream time)."""
    async with sessions() as session:
        api_id = await session.scalar(
            select(Subscription.api_id).where(Subscription.id == subscription_id)
        )
        assert api_id is not None
        await store_executions(
            session,
            [
                ExecutionEvent(
                    event_id=str(uuid.uuid4()),
                    request_id=uuid.uuid4().hex,
                    api_id=api_id,
                    deployment_id=None,
                    caller_id=None,
                    method="GET",
                    path="/x",
                    status_code=status,
                    latency_ms=2.0,
                    upstream_ms=1.0 if forwarded else None,
                    bytes_in=0,
                    bytes_out=0,
                    started_at=when + timedelta(milliseconds=i),
                    subscription_id=subscription_id,
                )
                for i in range(count)
            ],
        )
        await session.commit()


async def invoice_with_lines(
    sessions: Sessions, subscription_id: str, period: str
) -> tuple[Invoice, list[InvoiceLine]] | None:
    async with sessions() as session:
        invoice = await session.scalar(
            select(Invoice).where(
                Invoice.subscription_id == subscription_id, Invoice.period == period
            )
        )
        if invoice is None:
            return None
        lines = await session.scalars(
            select(InvoiceLine)
            .where(InvoiceLine.invoice_id == invoice.id)
            .order_by(InvoiceLine.position)
        )
        return invoice, list(lines)


def snapshot(found: tuple[Invoice, list[InvoiceLine]] | None) -> dict[str, Any]:
    """Everything stored about an invoice, to compare before and after."""
    assert found is not None
    invoice, lines = found

    def columns(row: Any) -> dict[str, Any]:
        return {c.key: getattr(row, c.key) for c in row.__table__.columns}

    return {"invoice": columns(invoice), "lines": [columns(line) for line in lines]}
