"""Sign-up, login and refresh-token rotation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import repository
from gateway.auth.schemas import TokensOut
from shared.auth.passwords import DUMMY_HASH, hash_password, verify_password
from shared.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from shared.errors import Conflict, Unauthorized
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
    session: AsyncSession, settings: GatewaySettings, email: str, password: str
) -> TokensOut:
    user = await repository.find_user_by_email(session, normalise_email(email))
    stored = user.password_hash if user is not None else DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, password, stored)
    if user is None or not ok:
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if not user.is_active:
        raise Unauthorized("This account is suspended.", code="account_suspended")
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
            "This refresh token was already used; the session has been revoked.",
            code="refresh_token_reused",
        )
    user = await session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account no longer exists or is suspended.")
    stored.used_at = now
    return await _issue_tokens(session, settings, user, family_id=stored.family_id)


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
