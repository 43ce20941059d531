"""FastAPI dependencies: state, one session per request, the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.auth.service import ensure_not_suspended
from gateway.state import GatewayState
from shared.auth.tokens import AccessClaims, bearer_token, decode_access_token
from shared.errors import Forbidden, Unauthorized
from shared.http.app import ServiceSession, state_of
from shared.models import User

State = Annotated[GatewayState, Depends(state_of(GatewayState))]


# Committed before the response goes out; what the request invalidated
# (shared/invalidation.py) is published after that commit, by state.publisher.
Session = ServiceSession


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
