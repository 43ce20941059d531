"""Rules for plans: what a subscriber pays and may use.

The owner of an API creates, changes and removes its plans. A plan that ever
had a subscription is archived instead of deleted: its subscribers keep it,
nobody new can subscribe to it. Changing a limit or quota applies to every
subscriber of the plan at once (the router then tells the data plane to drop
its cached keys).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.plans import repository
from gateway.plans.schemas import PlanCreate, PlanList, PlanOut, PlanUpdate
from shared import invalidation
from shared.errors import Conflict, NotFound, Unprocessable
from shared.invalidation import EVERYTHING, invalidate
from shared.models import Api, Plan
from shared.models.base import utcnow

MAX_ACTIVE_PLANS_PER_API = 20
# Fields the data plane enforces on every call: changing one invalidates cached keys.
LIMIT_FIELDS = frozenset({"rate_per_second", "burst", "daily_quota", "monthly_quota"})
REQUIRED_FIELDS = frozenset(
    {"name", "price_per_1000_minor", "currency", "included_calls_per_month"}
)


class InvalidPlan(Unprocessable):
    code = "invalid_plan"


def to_out(plan: Plan) -> PlanOut:
    return PlanOut(
        id=plan.id,
        api_id=plan.api_id,
        name=plan.name,
        is_free=plan.is_free,
        price_per_1000_minor=plan.price_per_1000_minor,
        currency=plan.currency,
        included_calls_per_month=plan.included_calls_per_month,
        rate_per_second=plan.rate_per_second,
        burst=plan.burst,
        daily_quota=plan.daily_quota,
        monthly_quota=plan.monthly_quota,
        archived_at=plan.archived_at,
        created_at=plan.created_at,
        updated_at=plan.updated_at,
    )


def check_rate(rate_per_second: int | None, burst: int | None) -> None:
    if burst is None:
        return
    if rate_per_second is None:
        raise InvalidPlan(
            "'burst' needs 'rate_per_second': a burst is the headroom above a rate.",
            details={"field": "burst"},
        )
    if burst < rate_per_second:
        raise InvalidPlan(
            f"'burst' ({burst}) must be at least 'rate_per_second' ({rate_per_second}).",
            details={"field": "burst"},
        )


def clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidPlan("A plan needs a name.", details={"field": "name"})
    return name


async def list_plans(session: AsyncSession, api: Api) -> PlanList:
    """Every plan of the API, archived ones included, oldest first."""
    return PlanList(items=[to_out(p) for p in await repository.list_for_api(session, api.id)])


async def get_or_404(session: AsyncSession, api: Api, plan_id: str) -> Plan:
    plan = await repository.get(session, api.id, plan_id)
    if plan is None:
        raise NotFound("This API has no plan with this id.", code="plan_not_found")
    return plan


async def create(session: AsyncSession, api: Api, body: PlanCreate) -> Plan:
    check_rate(body.rate_per_second, body.burst)
    if await repository.count_active(session, api.id) >= MAX_ACTIVE_PLANS_PER_API:
        raise Conflict(
            f"An API has at most {MAX_ACTIVE_PLANS_PER_API} plans; remove one first.",
            code="too_many_plans",
            details={"maximum": MAX_ACTIVE_PLANS_PER_API},
        )
    plan = Plan(api_id=api.id, **body.model_dump())
    plan.name = clean_name(body.name)
    session.add(plan)
    await session.flush()
    return plan


async def update(session: AsyncSession, plan: Plan, body: PlanUpdate) -> None:
    """Apply the fields sent; a limit the data plane enforces applies within a second."""
    changes = body.model_dump(exclude_unset=True)
    for field in REQUIRED_FIELDS & changes.keys():
        if changes[field] is None:
            raise InvalidPlan(f"'{field}' cannot be null.", details={"field": field})
    if "name" in changes:
        changes["name"] = clean_name(changes["name"])
    check_rate(
        changes.get("rate_per_second", plan.rate_per_second), changes.get("burst", plan.burst)
    )
    limits_changed = any(getattr(plan, f) != changes[f] for f in LIMIT_FIELDS & changes.keys())
    for field, value in changes.items():
        setattr(plan, field, value)
    if limits_changed:
        # Cached keys carry their plan's limits: every data-plane worker drops them all.
        invalidate(session, invalidation.key(EVERYTHING))
    await session.flush()


async def remove(session: AsyncSession, plan: Plan) -> Literal["archived", "deleted"]:
    """Archive a plan that has (or had) subscriptions, delete one that never had any."""
    if await repository.has_subscriptions(session, plan.id):
        if plan.archived_at is None:
            plan.archived_at = utcnow()
            await session.flush()
        return "archived"
    await session.delete(plan)
    await session.flush()
    return "deleted"
