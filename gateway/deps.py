"""FastAPI dependencies: state, one session per request, the current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.service import ensure_not_suspended
from gateway.state import GatewayState
from shared.auth.tokens import AccessClaims, bearer_token, decode_access_token
from shared.db import session_scope
from shared.errors import Forbidden, Unauthorized
from shared.http.app import state_of
from shared.models import User

State = Annotated[GatewayState, Depends(state_of(GatewayState))]


async def get_session(state: State) -> AsyncIterator[AsyncSession]:
    async with session_scope(state.sessions, state.publisher) as session:
        yield session


# scope="function": commit (or roll back) before the response goes out, so a
# client never sees success for a write that did not land, and a streaming
# response does not hold a database connection while it streams. What the
# request invalidated (shared/invalidation.py) is published after that commit.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


def get_claims(request: Request, state: State) -> AccessClaims:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("Send an access token as 'Authorization: Bearer <token>'.")
    return decode_access_token(token, state.settings.jwt_secret.get_secret_value())


async def get_current_user(
    claims: Annotated[AccessClaims, Depends(get_claims)], session: Session
) -> User:
    user = await session.get(User, claims.user_id)
    if user is None:
        raise Unauthorized("The account behind this token no longer exists.")
    # Checked on every request, so a suspension ends access tokens already issued at once.
    ensure_not_suspended(user)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_developer(user: CurrentUser) -> User:
    if user.role not in ("developer", "admin"):
        raise Forbidden("Only developer accounts can manage APIs.", code="developer_only")
    return user


Developer = Annotated[User, Depends(get_developer)]


async def get_admin(user: CurrentUser) -> User:
    if user.role != "admin":
        raise Forbidden("This needs an admin account.", code="admin_only")
    return user


Admin = Annotated[User, Depends(get_admin)]
