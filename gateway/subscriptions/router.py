"""A consumer's subscriptions and API keys, and an owner's view of an API's subscribers."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.apis.service import get_owned_or_404
from gateway.deps import CurrentUser, Developer, Session, State
from gateway.subscriptions import repository, service
from gateway.subscriptions.schemas import (
    ChangePlanIn,
    IssuedKeyOut,
    KeyCreate,
    KeyList,
    SubscriberList,
    SubscriptionList,
    SubscriptionOut,
)

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])
keys_router = APIRouter(prefix="/api/v1/keys", tags=["subscriptions"])
subscribers_router = APIRouter(prefix="/api/v1/apis/{api_id}/subscribers", tags=["subscriptions"])


@router.get("")
async def list_subscriptions(user: CurrentUser, session: Session, state: State) -> SubscriptionList:
    """My subscriptions, cancelled ones included, newest first."""
    rows = await repository.list_for_consumer(session, user.id)
    url = state.settings.public_api_url
    return SubscriptionList(items=[service.subscription_out(s, a, p, url) for s, a, p in rows])


@router.get("/{subscription_id}")
async def get_subscription(
    subscription_id: str, user: CurrentUser, session: Session, state: State
) -> SubscriptionOut:
    row = await service.get_for_consumer_or_404(session, subscription_id, user)
    return service.subscription_out(*row, state.settings.public_api_url)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def cancel_subscription(
    subscription_id: str, user: CurrentUser, session: Session
) -> Response:
    """Cancel: every key of the subscription stops working within a second. Idempotent."""
    subscription, _, _ = await service.get_for_consumer_or_404(session, subscription_id, user)
    await service.cancel(session, subscription)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{subscription_id}/change-plan")
async def change_plan(
    subscription_id: str, body: ChangePlanIn, user: CurrentUser, session: Session, state: State
) -> SubscriptionOut:
    """Switch to another active plan of the API, now: upgrades and downgrades take effect
    at once, and the keys get the new limits within a second. The month's invoice gets
    one line per plan (see Billing in the README). Switching between two paid plans in
    different currencies is refused (409 `currency_mismatch`)."""
    subscription, api, _ = await service.get_for_consumer_or_404(session, subscription_id, user)
    plan = await service.change_plan(session, subscription, body.plan_id)
    return service.subscription_out(subscription, api, plan, state.settings.public_api_url)


@router.get("/{subscription_id}/keys")
async def list_keys(subscription_id: str, user: CurrentUser, session: Session) -> KeyList:
    """The subscription's keys, revoked ones included: prefixes only, never a key."""
    subscription, _, _ = await service.get_for_consumer_or_404(session, subscription_id, user)
    keys = await repository.list_keys(session, subscription.id)
    return KeyList(items=[service.key_out(k) for k in keys])


@router.post("/{subscription_id}/keys", status_code=status.HTTP_201_CREATED)
async def create_key(
    subscription_id: str, user: CurrentUser, session: Session, body: KeyCreate | None = None
) -> IssuedKeyOut:
    """Another key for the subscription (at most 10 active); `api_key` is shown only here."""
    subscription, _, _ = await service.get_for_consumer_or_404(session, subscription_id, user)
    key, plaintext = await service.issue_key(session, subscription, body.name if body else None)
    return IssuedKeyOut(key=service.key_out(key), api_key=plaintext)


@keys_router.post("/{key_id}/rotate", status_code=status.HTTP_201_CREATED)
async def rotate_key(key_id: str, user: CurrentUser, session: Session) -> IssuedKeyOut:
    """A new key (shown only here) replaces this one, which stops working at once: there is
    no grace period, so put the new key in place before relying on it."""
    key = await service.get_key_or_404(session, key_id, user)
    new_key, plaintext = await service.rotate(session, key)
    return IssuedKeyOut(key=service.key_out(new_key), api_key=plaintext)


@keys_router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: str, user: CurrentUser, session: Session) -> Response:
    """Revoke: the key stops working within a second. Idempotent."""
    key = await service.get_key_or_404(session, key_id, user)
    service.revoke(session, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@subscribers_router.get("")
async def list_subscribers(api_id: str, user: Developer, session: Session) -> SubscriberList:
    """The API's subscribers (its owner only), cancelled ones included, newest first."""
    api = await get_owned_or_404(session, api_id, user)
    rows = await repository.list_for_api(session, api.id)
    return SubscriberList(items=[service.subscriber_out(s, e, p) for s, e, p in rows])
