"""Admin: every user and every API, and suspending either (mounted by `admin.router`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.admin import repository, suspensions
from gateway.admin.pages import cut_page, decode_cursor
from gateway.admin.schemas import (
    AdminApiOut,
    AdminApiPage,
    AdminUserOut,
    AdminUserPage,
    RoleIn,
    SuspendIn,
)
from gateway.deps import Admin, Session, State
from shared.models import Api, User

router = APIRouter()

Search = Annotated[str | None, Query(max_length=100, description="substring, case-insensitive")]
Suspended = Annotated[bool | None, Query(description="only suspended (true) or not (false)")]
PageCursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=200)]


def user_out(user: User, api_count: int) -> AdminUserOut:
    return AdminUserOut(
        id=user.id,
        email=user.email,
        role=user.role,
        created_at=user.created_at,
        suspended=user.is_suspended,
        suspended_at=user.suspended_at,
        suspended_by=user.suspended_by,
        suspension_reason=user.suspension_reason,
        api_count=api_count,
    )


def api_out(api: Api, owner_email: str) -> AdminApiOut:
    return AdminApiOut(
        id=api.id,
        slug=api.slug,
        name=api.name,
        visibility=api.visibility,
        owner_id=api.owner_id,
        owner_email=owner_email,
        active_deployment_id=api.active_deployment_id,
        created_at=api.created_at,
        suspended=api.is_suspended,
        suspended_at=api.suspended_at,
        suspended_by=api.suspended_by,
        suspension_reason=api.suspension_reason,
        suspension_cause=api.suspension_cause,
    )


@router.get("/users")
async def list_users(
    _admin: Admin,
    session: Session,
    q: Search = None,
    suspended: Suspended = None,
    cursor: PageCursor = None,
    limit: Limit = 50,
) -> AdminUserPage:
    """Every account, newest first; `q` searches the email."""
    after = decode_cursor(cursor) if cursor else None
    query = q.strip() if q else None
    rows = await repository.users_page(session, query or None, suspended, after, limit + 1)
    page, next_cursor = cut_page(rows, limit)
    return AdminUserPage(
        items=[user_out(user, count) for user, count in page], next_cursor=next_cursor
    )


@router.post("/users/{user_id}/suspend")
async def suspend_user(
    user_id: str, admin: Admin, session: Session, state: State, body: SuspendIn | None = None
) -> AdminUserOut:
    """No sign-in, no refresh, no control plane, no API keys; every API of theirs is
    suspended too. Not your own account (409)."""
    user = await suspensions.user_or_404(session, user_id)
    fallout = await suspensions.suspend_user(session, admin, user, body.reason if body else None)
    await suspensions.carry_out(session, state.builds, fallout)
    return user_out(user, await repository.count_apis(session, user.id))


@router.post("/users/{user_id}/unsuspend")
async def unsuspend_user(
    user_id: str, admin: Admin, session: Session, state: State
) -> AdminUserOut:
    """Sign-in and keys work again, and APIs suspended because of the user are lifted
    (they stay stopped until their owner starts them). Idempotent."""
    user = await suspensions.user_or_404(session, user_id)
    fallout = await suspensions.unsuspend_user(session, admin, user)
    await suspensions.carry_out(session, state.builds, fallout)
    return user_out(user, await repository.count_apis(session, user.id))


@router.post("/users/{user_id}/role")
async def change_role(
    user_id: str, body: RoleIn, admin: Admin, session: Session, state: State
) -> AdminUserOut:
    """Grant or take a role (`developer`, `consumer`, `admin`); effective at once on the
    control plane and the data plane. Not away from your own admin account (409)."""
    user = await suspensions.user_or_404(session, user_id)
    fallout = suspensions.change_role(session, admin, user, body.role)
    await suspensions.carry_out(session, state.builds, fallout)
    return user_out(user, await repository.count_apis(session, user.id))


@router.get("/apis")
async def list_apis(
    _admin: Admin,
    session: Session,
    q: Search = None,
    suspended: Suspended = None,
    cursor: PageCursor = None,
    limit: Limit = 50,
) -> AdminApiPage:
    """Every API, private ones too, newest first; `q` searches name, slug and owner email."""
    after = decode_cursor(cursor) if cursor else None
    query = q.strip() if q else None
    rows = await repository.apis_page(session, query or None, suspended, after, limit + 1)
    page, next_cursor = cut_page(rows, limit)
    return AdminApiPage(items=[api_out(api, email) for api, email in page], next_cursor=next_cursor)


@router.post("/apis/{api_id}/suspend")
async def suspend_api(
    api_id: str, admin: Admin, session: Session, state: State, body: SuspendIn | None = None
) -> AdminApiOut:
    """Stop its container, refuse its owner's deploys (409 `api_suspended`), take it off
    the marketplace, and answer its calls 403 `api_suspended`."""
    api = await suspensions.api_or_404(session, api_id)
    fallout = await suspensions.suspend_api(session, admin, api, body.reason if body else None)
    await suspensions.carry_out(session, state.builds, fallout)
    owner = await suspensions.user_or_404(session, api.owner_id)
    return api_out(api, owner.email)


@router.post("/apis/{api_id}/unsuspend")
async def unsuspend_api(api_id: str, admin: Admin, session: Session, state: State) -> AdminApiOut:
    """Lift an API's own suspension; its owner starts it again. Idempotent. 409
    `owner_suspended` while its owner is suspended."""
    api = await suspensions.api_or_404(session, api_id)
    fallout = await suspensions.unsuspend_api(session, admin, api)
    await suspensions.carry_out(session, state.builds, fallout)
    owner = await suspensions.user_or_404(session, api.owner_id)
    return api_out(api, owner.email)
