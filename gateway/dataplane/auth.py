"""Who is calling: a subscriber with an API key, or the API's owner with a bearer token.

`X-API-Key` is checked first: its hash in the key cache, and on a miss its
format and checksum locally, so garbage never reaches the database. The owner
(or an admin) may call their own API with an access token, unmetered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.dataplane.accounts import AccountCache
from gateway.dataplane.cache import Missing
from gateway.dataplane.failures import FailedKeys
from gateway.dataplane.keys import KeyCache, KeyInfo
from gateway.dataplane.routes import Route
from shared.auth.api_keys import hash_key, well_formed
from shared.auth.tokens import bearer_token, decode_access_token
from shared.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Caller:
    user_id: str
    key: KeyInfo | None  # None: the owner or an admin, with a bearer token


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


async def identify(
    headers: list[tuple[bytes, bytes]],
    route: Route,
    keys: KeyCache,
    accounts: AccountCache,
    jwt_secret: str,
    failures: FailedKeys,
    address: Callable[[], str],
) -> Caller:
    """Return the caller, or raise 401 (no or bad credentials) / 403 (not subscribed,
    or a bearer token of a suspended account)."""
    api_key = _header(headers, b"x-api-key")
    if api_key is not None:
        plaintext = api_key.decode("latin-1").strip()
        key_hash = hash_key(plaintext)
        info = keys.cached(key_hash)
        if isinstance(info, Missing):
            caller = address()
            failures.check(caller)  # a guesser is refused before the database
            # Only a hash cached from a well-formed key is ever found above, so the
            # format and checksum are checked here, before the database, not per call.
            info = await keys.lookup(key_hash) if well_formed(plaintext) else None
            if info is None:
                failures.failed(caller)
        if info is None:
            raise Unauthorized(
                "This API key is not valid or has been revoked.", code="invalid_api_key"
            )
        if info.api_id != route.api_id:
            raise Forbidden(
                "This key belongs to a subscription to another API; subscribe to this"
                " one to call it.",
                code="not_subscribed",
            )
        return Caller(info.consumer_id, info)
    authorization = _header(headers, b"authorization")
    token = bearer_token(authorization.decode("latin-1") if authorization else None)
    if token is None:
        raise Unauthorized("Send your API key in the 'X-API-Key' header.", code="missing_api_key")
    claims = decode_access_token(token, jwt_secret)
    # The role and state the account has now, not the token's claims from when it
    # was issued: a demoted admin or a suspended owner is refused at once.
    account = await accounts.get(claims.user_id)
    if account is not None and not account.usable:
        raise Forbidden(
            "This account is suspended by the platform's admins.", code="account_suspended"
        )
    if account is None or (claims.user_id != route.owner_id and account.role != "admin"):
        raise Forbidden(
            "Only the API's owner calls it with an access token; subscribe to get an API key.",
            code="not_subscribed",
        )
    return Caller(claims.user_id, None)
