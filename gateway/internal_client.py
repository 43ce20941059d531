"""Calls from the gateway to the platform's internal services (executor, analytics).

Each answer is checked against the model the gateway's endpoint documents. One
that does not fit is that service's fault, never the caller's: a 502 in the one
error shape (and a log line saying what did not fit), not a 500 from the
response model or a body that contradicts the OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from shared.errors import BadGateway, ServiceUnavailable, VeilError
from shared.http.context import current_request_id

log = logging.getLogger("veil.gateway.internal")

M = TypeVar("M", bound=BaseModel)

# A restart waits for the app to answer again (the executor's start timeout).
RESTART_TIMEOUT_SECONDS = 60.0


class UpstreamServiceError(VeilError):
    """An internal service answered with an error: passed on with its status and code."""


async def call_service(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    token: str,
    model: type[M],
    params: dict[str, Any] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109  # httpx's own per-request timeout
) -> M:
    """The service's answer as a `model`."""
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": current_request_id.get()}
    try:
        response = await client.request(
            method,
            url,
            params=params,
            headers=headers,
            timeout=timeout if timeout is not None else client.timeout,
        )
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            "An internal service is unavailable; try again shortly.", code="service_unavailable"
        ) from exc
    body = response.json() if response.content else None
    if response.status_code >= 400:
        error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
        raise UpstreamServiceError(
            str(error.get("message", "Internal service error.")),
            code=str(error.get("code", "internal_error")),
            status=response.status_code,
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        log.warning(
            "internal answer is not a %s: %s",
            model.__name__,
            exc.errors(include_url=False, include_input=False),
        )
        raise BadGateway(
            "An internal service gave an answer of the wrong shape.", code="bad_internal_answer"
        ) from exc
