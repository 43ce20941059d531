"""The marketplace: browse public APIs without an account, subscribe with one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from gateway.deps import CurrentUser, Session, State, get_claims, get_current_user
from gateway.marketplace import service
from gateway.marketplace.schemas import MarketplaceDetail, MarketplacePage, SubscribeIn
from gateway.subscriptions import service as subscriptions
from gateway.subscriptions.schemas import SubscribedOut
from shared.models import User

router = APIRouter(prefix="/api/v1/marketplace", tags=["marketplace"])


async def get_viewer(request: Request, state: State, session: Session) -> User | None:
    """The signed-in user, or None without an Authorization header. A token that is
    sent but invalid is still a 401: the client believes it is signed in."""
    if request.headers.get("authorization") is None:
        return None
    return await get_current_user(get_claims(request, state), session)


Viewer = Annotated[User | None, Depends(get_viewer)]


@router.get("/apis")
async def list_apis(
    session: Session,
    state: State,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MarketplacePage:
    """Public APIs, by name; `q` searches name, slug and description (case-insensitive)."""
    query = q.strip() if q else None
    return await service.search(
        session, query or None, limit, offset, state.settings.public_api_url
    )


@router.get("/apis/{api_id}")
async def get_api(api_id: str, viewer: Viewer, session: Session, state: State) -> MarketplaceDetail:
    """An API's page: description, URL, an example request and its active plans."""
    return await service.detail(session, api_id, viewer, state.settings.public_api_url)


@router.post("/apis/{api_id}/subscribe", status_code=status.HTTP_201_CREATED)
async def subscribe(
    api_id: str,
    user: CurrentUser,
    session: Session,
    state: State,
    body: SubscribeIn | None = None,
) -> SubscribedOut:
    """Subscribe to a plan (`plan_id` may be left out when the API has exactly one) and
    get the first API key. `api_key` is shown only in this answer.

    A paid plan needs no payment step yet: billing comes with a later issue.
    """
    api = await service.get_subscribable_or_404(session, api_id, user)
    subscription, plan, key, plaintext = await subscriptions.subscribe(
        session, user, api, body.plan_id if body else None
    )
    return SubscribedOut(
        subscription=subscriptions.subscription_out(
            subscription, api, plan, state.settings.public_api_url
        ),
        api_key=plaintext,
        key=subscriptions.key_out(key),
    )
