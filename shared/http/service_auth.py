"""Service-to-service authentication for the internal APIs (executor, analytics)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from shared.auth.tokens import bearer_token
from shared.errors import Unauthorized
from shared.http.app import service_state


def require_service_token(request: Request) -> None:
    """The token is the service's own `settings.service_token`: every app made by
    create_service_app has a state with settings (checked when it starts)."""
    expected = service_state(request.app).settings.service_token.get_secret_value()
    token = bearer_token(request.headers.get("authorization")) or ""
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("This is an internal endpoint.", code="invalid_service_token")


ServiceOnly = Annotated[None, Depends(require_service_token)]
