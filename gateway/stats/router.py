from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from gateway.apis.service import get_owned_or_404
from gateway.deps import Developer, Session, State
from gateway.internal_client import call_service

router = APIRouter(prefix="/api/v1/apis", tags=["stats"])


@router.get("/{api_id}/stats")
async def stats(
    api_id: str,
    user: Developer,
    session: Session,
    state: State,
    since: datetime | None = Query(default=None, description="ISO 8601; default 24 hours ago"),
    until: datetime | None = Query(default=None, description="ISO 8601; default now"),
) -> Any:
    """Calls, errors and latency percentiles of the API over a window (from analytics)."""
    api = await get_owned_or_404(session, api_id, user)
    params = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
    return await call_service(
        state.services,
        "GET",
        f"{state.settings.analytics_url}/internal/v1/apis/{api.id}/stats",
        state.settings.service_token.get_secret_value(),
        params=params,
    )
