"""Calls from the gateway to the platform's internal services (executor, analytics)."""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import ServiceUnavailable, VeilError
from shared.http.context import current_request_id

# A restart waits for the app to answer again (the executor's start timeout).
RESTART_TIMEOUT_SECONDS = 60.0


class UpstreamServiceError(VeilError):
    """An internal service answered with an error: passed on with its status and code."""


async def call_service(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    token: str,
    params: dict[str, Any] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109  # httpx's own per-request timeout
) -> Any:
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
    return body
