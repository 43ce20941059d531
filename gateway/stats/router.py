"""Stats and execution history, proxied to analytics with the service token.

An API's owner sees all of its calls; a subscriber sees only their own
subscription's calls. Another user's API or subscription answers like a
missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Query
from pydantic import BaseModel

from analytics.history.schemas import ExecutionPage
from analytics.stats.schemas import ApiStats
from gateway.apis.service import get_owned_or_404
from gateway.deps import CurrentUser, Developer, Session, State
from gateway.internal_client import call_service
from gateway.state import GatewayState
from gateway.stats.schemas import OwnerApiStats
from gateway.subscriptions import repository as subscriptions_repository
from gateway.subscriptions.service import display_name, get_for_consumer_or_404

router = APIRouter(tags=["stats"])

SINCE = Query(default=None, description="ISO 8601; default 24 hours ago")
UNTIL = Query(default=None, description="ISO 8601; default now")
STATUS = Query(default=None, description="a status code (404) or a class (5xx)")
CURSOR = Query(default=None, description="next_cursor of the previous page")

M = TypeVar("M", bound=BaseModel)


def _params(**values: Any) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in values.items()
        if v is not None
    }


async def _analytics(state: GatewayState, model: type[M], path: str, params: dict[str, Any]) -> M:
    return await call_service(
        state.services,
        "GET",
        f"{state.settings.analytics_url}/internal/v1/{path}",
        state.settings.service_token.get_secret_value(),
        model,
        params=params,
    )


@router.get("/api/v1/apis/{api_id}/stats")
async def stats(
    api_id: str,
    user: Developer,
    session: Session,
    state: State,
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    version: int | None = Query(default=None),
    subscription_id: str | None = Query(default=None),
    key_id: str | None = Query(default=None),
) -> OwnerApiStats:
    """Calls, errors, latency percentiles (total, gateway, upstream), bytes, top consumers
    and a time series of the API over a window (from analytics)."""
    api = await get_owned_or_404(session, api_id, user)
    params = _params(
        since=since, until=until, version=version, subscription_id=subscription_id, key_id=key_id
    )
    body = await _analytics(state, OwnerApiStats, f"apis/{api.id}/stats", params)
    if body.top_consumers:
        names = {
            subscription.id: display_name(email)
            for subscription, email, _plan in await subscriptions_repository.list_for_api(
                session, api.id
            )
        }
        for entry in body.top_consumers:
            entry.consumer = names.get(entry.subscription_id or "")
    return body


@router.get("/api/v1/apis/{api_id}/executions")
async def api_executions(
    api_id: str,
    user: Developer,
    session: Session,
    state: State,
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    status: str | None = STATUS,
    key_id: str | None = Query(default=None),
    subscription_id: str | None = Query(default=None),
    version: int | None = Query(default=None),
    cursor: str | None = CURSOR,
    limit: int = Query(default=50, ge=1, le=500),
) -> ExecutionPage:
    """The API's calls, newest first, a page at a time (raw history: retention-limited)."""
    api = await get_owned_or_404(session, api_id, user)
    params = _params(
        since=since,
        until=until,
        status=status,
        key_id=key_id,
        subscription_id=subscription_id,
        version=version,
        cursor=cursor,
        limit=limit,
    )
    return await _analytics(state, ExecutionPage, f"apis/{api.id}/executions", params)


@router.get("/api/v1/subscriptions/{subscription_id}/stats")
async def subscription_stats(
    subscription_id: str,
    user: CurrentUser,
    session: Session,
    state: State,
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    key_id: str | None = Query(default=None),
) -> ApiStats:
    """My subscription's calls, errors, bytes, average latency and time series."""
    subscription, api, _plan = await get_for_consumer_or_404(session, subscription_id, user)
    params = _params(since=since, until=until, subscription_id=subscription.id, key_id=key_id)
    return await _analytics(state, ApiStats, f"apis/{api.id}/stats", params)


@router.get("/api/v1/subscriptions/{subscription_id}/executions")
async def subscription_executions(
    subscription_id: str,
    user: CurrentUser,
    session: Session,
    state: State,
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    status: str | None = STATUS,
    key_id: str | None = Query(default=None),
    cursor: str | None = CURSOR,
    limit: int = Query(default=50, ge=1, le=500),
) -> ExecutionPage:
    """My subscription's calls, newest first, a page at a time; nobody else's."""
    subscription, api, _plan = await get_for_consumer_or_404(session, subscription_id, user)
    params = _params(
        since=since,
        until=until,
        status=status,
        key_id=key_id,
        subscription_id=subscription.id,
        cursor=cursor,
        limit=limit,
    )
    return await _analytics(state, ExecutionPage, f"apis/{api.id}/executions", params)
