"""Sign-up, login, refresh-token rotation and logout."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import repository
from gateway.auth.schemas import TokensOut
from gateway.auth.throttle import LoginThrottle
from shared.auth.passwords import dummy_hash, hash_password, verify_password
from shared.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from shared.errors import Conflict, Forbidden, Unauthorized
from shared.models import RefreshToken, User
from shared.models.base import new_id
from shared.settings import GatewaySettings


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def signup(
    session: AsyncSession, settings: GatewaySettings, email: str, password: str, role: str
) -> tuple[User, TokensOut]:
    email = normalise_email(email)
    if await repository.find_user_by_email(session, email) is not None:
        raise Conflict("An account with this email already exists.", code="email_taken")
    password_hash = await asyncio.to_thread(hash_password, password, settings.bcrypt_rounds)
    user = User(id=new_id(), email=email, password_hash=password_hash, role=role)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent sign-up with the same email won the race
        raise Conflict("An account with this email already exists.", code="email_taken") from None
    return user, await _issue_tokens(session, settings, user, family_id=new_id())


async def login(
    session: AsyncSession,
    settings: GatewaySettings,
    throttle: LoginThrottle,
    email: str,
    password: str,
    address: str,
) -> TokensOut:
    email = normalise_email(email)
    await throttle.check(email, address)  # before bcrypt: a locked guesser costs nothing
    user = await repository.find_user_by_email(session, email)
    stored = user.password_hash if user is not None else dummy_hash(settings.bcrypt_rounds)
    ok = await asyncio.to_thread(verify_password, password, stored)
    if user is None or not ok:
        await throttle.failed(email, address)
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    await throttle.succeeded(email, address)
    ensure_not_suspended(user)
    return await _issue_tokens(session, settings, user, family_id=new_id())


async def refresh(session: AsyncSession, settings: GatewaySettings, token: str) -> TokensOut:
    now = datetime.now(UTC)
    stored = await repository.find_refresh_token(session, hash_refresh_token(token))
    if stored is None or stored.expires_at <= now:
        raise Unauthorized("The refresh token is invalid or expired.", code="invalid_refresh_token")
    if stored.used_at is not None or stored.revoked_at is not None:
        # A rotated token came back: someone holds a copy. End the whole login.
        await repository.revoke_family(session, stored.family_id, now)
        await session.commit()
        raise Unauthorized(
            "This refresh token was already used or its session ended; sign in again.",
            code="refresh_token_reused",
        )
    user = await session.get(User, stored.user_id)
    if user is None:
        raise Unauthorized("The account no longer exists.")
    ensure_not_suspended(user)
    stored.used_at = now
    return await _issue_tokens(session, settings, user, family_id=stored.family_id)


async def logout(session: AsyncSession, token: str) -> None:
    """End the login the refresh token belongs to: this token and every token rotated
    from the same login stop working. Unknown, expired or already revoked tokens are
    fine: logging out twice is not an error, and the answer says nothing about a token."""
    stored = await repository.find_refresh_token(session, hash_refresh_token(token))
    if stored is not None:
        await repository.revoke_family(session, stored.family_id, datetime.now(UTC))


def ensure_not_suspended(user: User) -> None:
    """A suspended account (or one switched off) gets no tokens and no control plane.

    403, not 401: the credentials are right, signing in again will not help."""
    if user.is_suspended or not user.is_active:
        raise Forbidden(
            "This account is suspended by the platform's admins.", code="account_suspended"
        )


async def _issue_tokens(
    session: AsyncSession, settings: GatewaySettings, user: User, family_id: str
) -> TokensOut:
    raw_refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(raw_refresh),
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    access = issue_access_token(
        user.id,
        user.role,
        settings.jwt_secret.get_secret_value(),
        settings.access_token_ttl_seconds,
    )
    return TokensOut(
        access_token=access,
        refresh_token=raw_refresh,
        expires_in=settings.access_token_ttl_seconds,
    )
