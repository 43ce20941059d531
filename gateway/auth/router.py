from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gateway.auth import service
from gateway.auth.schemas import LoginIn, LogoutIn, RefreshIn, SignupIn, TokensOut, UserOut
from gateway.deps import CurrentUser, Session, State
from shared.http.client_address import client_address

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class SignupOut(TokensOut):
    user: UserOut


@router.post("/signup", status_code=status.HTTP_201_CREATED)
async def signup(body: SignupIn, session: Session, state: State) -> SignupOut:
    user, tokens = await service.signup(
        session, state.settings, body.email, body.password, body.role
    )
    return SignupOut(
        **tokens.model_dump(), user=UserOut(id=user.id, email=user.email, role=user.role)
    )


@router.post("/login")
async def login(body: LoginIn, request: Request, session: Session, state: State) -> TokensOut:
    """429 `too_many_login_attempts` with Retry-After after repeated failures for the
    account or from the address (gateway/auth/throttle.py)."""
    address = client_address(
        request.scope["headers"],
        request.client.host if request.client else None,
        state.settings.client_address_header.lower().encode("latin-1"),
    )
    return await service.login(
        session, state.settings, state.login_throttle, body.email, body.password, address
    )


@router.post("/refresh")
async def refresh(body: RefreshIn, session: Session, state: State) -> TokensOut:
    return await service.refresh(session, state.settings, body.refresh_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: LogoutIn, session: Session) -> Response:
    """Revoke the refresh token (and its session). 204 whatever the token: idempotent.

    Access tokens already issued live until they expire (minutes): drop them client-side."""
    await service.logout(session, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, email=user.email, role=user.role)
