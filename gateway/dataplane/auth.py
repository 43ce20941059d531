"""Who is calling: for now the API's owner (or an admin) with a bearer access token.

API keys for subscribers arrive with the marketplace; they will plug in here.
"""

from __future__ import annotations

from gateway.dataplane.routes import Route
from shared.auth.tokens import bearer_token, decode_access_token
from shared.errors import Forbidden, Unauthorized


def authenticate(headers: list[tuple[bytes, bytes]], route: Route, jwt_secret: str) -> str:
    """Return the caller's user id, or raise 401/403."""
    authorization = next((v for k, v in headers if k == b"authorization"), None)
    token = bearer_token(authorization.decode("latin-1") if authorization else None)
    if token is None:
        raise Unauthorized("Send 'Authorization: Bearer <access token>' to call this API.")
    claims = decode_access_token(token, jwt_secret)
    if claims.user_id != route.owner_id and claims.role != "admin":
        raise Forbidden("You have no access to this API.", code="no_access")
    return claims.user_id
