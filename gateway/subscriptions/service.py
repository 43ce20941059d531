"""Rules for subscriptions and API keys.

A consumer subscribes to one plan of an API and gets a key, shown once; only
its SHA-256 is stored. A subscription holds up to MAX_ACTIVE_KEYS live keys.
Rotating a key revokes the old one at once, with no grace period: whoever
rotates swaps the new key in first. Revoking is idempotent. Cancelling a
subscription revokes all of its keys.

A subscriber changes plan at once, upgrade or downgrade alike: the plan period
that was open ends and the next starts at the same instant (billing prices each
period's calls by its plan and prorates its included calls). The new plan must be
an active plan of the same API; two paid plans must share a currency, since one
invoice has one. Quota counters are the subscription's, not the plan's: the calls
made today and this month count against the new plan's quotas too.

Functions that revoke return the hashes they revoked: the router publishes
them on the keys channel after the commit, so that every data-plane worker
drops them from its cache within a second.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.apis.service import public_url
from gateway.plans import repository as plans_repository
from gateway.plans.service import to_out as plan_out
from gateway.subscriptions import repository
from gateway.subscriptions.schemas import (
    KeyOut,
    PlanRef,
    SubscriberOut,
    SubscriptionOut,
)
from shared import invalidation
from shared.auth import api_keys
from shared.errors import Conflict, NotFound, Unprocessable
from shared.invalidation import invalidate
from shared.models import Api, ApiKey, Plan, Subscription, User
from shared.models.base import utcnow

MAX_ACTIVE_KEYS = 10


def display_name(email: str) -> str:
    """How one user is shown to another: the email's local part, never the whole address."""
    return email.split("@", 1)[0]


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        subscription_id=key.subscription_id,
        prefix=key.prefix,
        name=key.name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


def subscription_out(
    subscription: Subscription, api: Api, plan: Plan, public_api_url: str
) -> SubscriptionOut:
    return SubscriptionOut(
        id=subscription.id,
        api_id=api.id,
        api_slug=api.slug,
        api_name=api.name,
        url=public_url(api, public_api_url),
        plan=plan_out(plan),
        status=subscription.status,
        created_at=subscription.created_at,
        cancelled_at=subscription.cancelled_at,
    )


def subscriber_out(subscription: Subscription, email: str, plan: Plan) -> SubscriberOut:
    return SubscriberOut(
        id=subscription.id,
        consumer=display_name(email),
        plan=PlanRef(id=plan.id, name=plan.name),
        status=subscription.status,
        created_at=subscription.created_at,
        cancelled_at=subscription.cancelled_at,
    )


async def _pick_plan(session: AsyncSession, api: Api, plan_id: str | None) -> Plan:
    if plan_id is None:
        plans = await plans_repository.active_for_apis(session, [api.id])
        if not plans:
            raise Conflict("This API has no plan to subscribe to yet.", code="no_active_plan")
        if len(plans) > 1:
            raise Unprocessable(
                "This API has several plans: choose one with 'plan_id'.",
                code="plan_required",
                details={"plan_ids": [p.id for p in plans]},
            )
        return plans[0]
    plan = await plans_repository.get(session, api.id, plan_id)
    if plan is None:
        raise NotFound("This API has no plan with this id.", code="plan_not_found")
    if plan.archived_at is not None:
        raise Conflict("This plan is archived: choose another one.", code="plan_archived")
    return plan


async def subscribe(
    session: AsyncSession, consumer: User, api: Api, plan_id: str | None
) -> tuple[Subscription, Plan, ApiKey, str]:
    """Subscribe `consumer` to a plan of `api` (visibility is the caller's check) and issue
    the first key, and open its first plan period (billing). No payment step yet."""
    plan = await _pick_plan(session, api, plan_id)
    already = Conflict(
        "You already have an active subscription to this API; change its plan instead.",
        code="already_subscribed",
    )
    if await repository.has_active(session, consumer.id, api.id):
        raise already
    subscription = Subscription(api_id=api.id, plan_id=plan.id, consumer_id=consumer.id)
    session.add(subscription)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent request subscribed first (partial unique index)
        raise already from None
    await repository.start_plan_period(session, subscription.id, plan.id, subscription.created_at)
    key, plaintext = await _new_key(session, subscription, None)
    return subscription, plan, key, plaintext


async def _new_key(
    session: AsyncSession, subscription: Subscription, name: str | None
) -> tuple[ApiKey, str]:
    issued = api_keys.generate()
    label = name.strip() if name else ""
    key = ApiKey(
        subscription_id=subscription.id,
        consumer_id=subscription.consumer_id,
        api_id=subscription.api_id,
        key_hash=issued.key_hash,
        prefix=issued.prefix,
        name=label or None,
    )
    session.add(key)
    await session.flush()
    return key, issued.plaintext


def _require_active(subscription: Subscription) -> None:
    if subscription.status != "active":
        raise Conflict(
            "This subscription is cancelled: subscribe again for new keys.",
            code="subscription_cancelled",
        )


async def get_for_consumer_or_404(
    session: AsyncSession, subscription_id: str, consumer: User
) -> tuple[Subscription, Api, Plan]:
    """Another consumer's subscription answers exactly like a missing one."""
    row = await repository.get_for_consumer(session, subscription_id, consumer.id)
    if row is None:
        raise NotFound("No subscription with this id.", code="subscription_not_found")
    return row[0], row[1], row[2]


async def get_key_or_404(session: AsyncSession, key_id: str, consumer: User) -> ApiKey:
    key = await repository.get_key_for_consumer(session, key_id, consumer.id)
    if key is None:
        raise NotFound("No API key with this id.", code="key_not_found")
    return key


async def issue_key(
    session: AsyncSession, subscription: Subscription, name: str | None
) -> tuple[ApiKey, str]:
    _require_active(subscription)
    await repository.lock_subscription(session, subscription.id)
    if await repository.count_active_keys(session, subscription.id) >= MAX_ACTIVE_KEYS:
        raise Conflict(
            f"A subscription has at most {MAX_ACTIVE_KEYS} active keys; revoke one first.",
            code="too_many_keys",
            details={"maximum": MAX_ACTIVE_KEYS},
        )
    return await _new_key(session, subscription, name)


async def rotate(session: AsyncSession, key: ApiKey) -> tuple[ApiKey, str]:
    """A new key with the same name; the old one is revoked now. Returns the new key and
    its plaintext."""
    subscription = await session.get(Subscription, key.subscription_id)
    assert subscription is not None  # the foreign key guarantees it
    _require_active(subscription)
    if key.revoked_at is not None:
        raise Conflict("This key is revoked; create a new one instead.", code="key_revoked")
    key.revoked_at = utcnow()
    invalidate(session, invalidation.key(key.key_hash))
    new_key, plaintext = await _new_key(session, subscription, key.name)
    return new_key, plaintext


def revoke(session: AsyncSession, key: ApiKey) -> None:
    """Idempotent (the data plane is told again if it was revoked before)."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    invalidate(session, invalidation.key(key.key_hash))


async def cancel(session: AsyncSession, subscription: Subscription) -> None:
    """Cancel and revoke every live key; idempotent."""
    if subscription.status == "cancelled":
        return
    now = utcnow()
    subscription.status = "cancelled"
    subscription.cancelled_at = now
    await repository.end_open_plan_period(session, subscription.id, now)
    for key in await repository.active_keys(session, subscription.id):
        key.revoked_at = now
        invalidate(session, invalidation.key(key.key_hash))
    await session.flush()


async def change_plan(session: AsyncSession, subscription: Subscription, plan_id: str) -> Plan:
    """Move the subscription to another plan of its API, now. Returns the plan in force;
    choosing the current plan changes nothing. The subscription's live keys are
    invalidated, so that the data plane applies the new limits at once."""
    await repository.lock(session, subscription)
    _require_active(subscription)
    current = await session.get(Plan, subscription.plan_id)
    assert current is not None  # the foreign key guarantees it
    if plan_id == current.id:
        return current
    api = await session.get(Api, subscription.api_id)
    assert api is not None
    plan = await _pick_plan(session, api, plan_id)
    if not (current.is_free or plan.is_free) and plan.currency != current.currency:
        raise Conflict(
            f"This plan is billed in {plan.currency}, yours in {current.currency}: cancel and"
            " subscribe again to switch currency.",
            code="currency_mismatch",
        )
    now = utcnow()
    await repository.end_open_plan_period(session, subscription.id, now)
    await repository.start_plan_period(session, subscription.id, plan.id, now)
    subscription.plan_id = plan.id
    for key in await repository.active_keys(session, subscription.id):
        invalidate(session, invalidation.key(key.key_hash))
    await session.flush()
    return plan
