"""Access tokens (JWT, HS256, short-lived) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from shared.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "veil"
AUDIENCE = "veil-api"


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: str


def issue_access_token(user_id: str, role: str, secret: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": user_id,
        "role": role,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
        "typ": "access",
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> AccessClaims:
    """Check signature, algorithm (HS256 only: `alg: none` is refused), issuer, audience, expiry."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired.", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("The access token is invalid.", code="invalid_token") from None
    if payload.get("typ") != "access" or not isinstance(payload.get("role"), str):
        raise Unauthorized("The access token is invalid.", code="invalid_token")
    return AccessClaims(user_id=str(payload["sub"]), role=payload["role"])


def new_refresh_token() -> str:
    return "veil_rt_" + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """Extract the token from an `Authorization: Bearer …` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
