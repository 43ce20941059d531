from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import StreamingResponse

from executor.schemas import LogsOut, RestartOut
from gateway.apis.service import ensure_not_suspended, get_owned_or_404
from gateway.build_queue import STOP_JOB
from gateway.deployments import feed, repository, service
from gateway.deployments.schemas import (
    DeployIn,
    DeploymentList,
    DeployOut,
    RollbackIn,
    StatusOut,
)
from gateway.deps import Developer, Session, State
from gateway.internal_client import RESTART_TIMEOUT_SECONDS, call_service
from shared.errors import NotFound

router = APIRouter(prefix="/api/v1/apis", tags=["deployments"])


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retrying with the same key returns the first deployment instead of a new one.",
    ),
]


@router.post("/{api_id}/deploy", status_code=status.HTTP_202_ACCEPTED)
async def deploy(
    api_id: str,
    user: Developer,
    session: Session,
    state: State,
    body: DeployIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> DeployOut:
    """Build and start the latest version (or `version`); traffic moves once it answers."""
    api = await get_owned_or_404(session, api_id, user)
    version = body.version if body is not None else None
    return await service.deploy(session, state.builds, api, user, version, idempotency_key)


@router.post("/{api_id}/rollback", status_code=status.HTTP_202_ACCEPTED)
async def rollback(
    api_id: str,
    body: RollbackIn,
    user: Developer,
    session: Session,
    state: State,
    idempotency_key: IdempotencyKey = None,
) -> DeployOut:
    """Deploy an earlier version again (any version this API has)."""
    api = await get_owned_or_404(session, api_id, user)
    return await service.deploy(session, state.builds, api, user, body.version, idempotency_key)


@router.get("/{api_id}/deployments")
async def list_deployments(api_id: str, user: Developer, session: Session) -> DeploymentList:
    """Every deployment of the API, newest first."""
    api = await get_owned_or_404(session, api_id, user)
    rows = await repository.list_for_api(session, api.id)
    return DeploymentList(items=[service.deployment_out(d, v) for d, v in rows])


@router.get(
    "/{api_id}/deployments/{deployment_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def deployment_events(
    api_id: str, deployment_id: str, user: Developer, session: Session, state: State
) -> StreamingResponse:
    """Build log and status as server-sent events, live, from the first line.

    Events: `status` {status}, `log` {line}, and a final `end` {status, error?}.
    """
    api = await get_owned_or_404(session, api_id, user)
    found = await repository.get_with_version(session, deployment_id)
    if found is None or found[0].api_id != api.id:
        raise NotFound("No deployment with this id.", code="deployment_not_found")
    return StreamingResponse(
        feed.follow(state.redis, found[0]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{api_id}/status")
async def api_status(api_id: str, user: Developer, session: Session, state: State) -> StatusOut:
    api = await get_owned_or_404(session, api_id, user)
    return await service.status(session, api, state.settings.public_api_url)


@router.get("/{api_id}/logs")
async def logs(
    api_id: str,
    user: Developer,
    session: Session,
    state: State,
    tail: int = Query(default=200, ge=1, le=5000),
) -> LogsOut:
    """Runtime logs (stdout and stderr) of the API's running container."""
    api = await get_owned_or_404(session, api_id, user)
    return await call_service(
        state.services,
        "GET",
        f"{state.settings.executor_url}/internal/v1/apis/{api.id}/logs",
        state.settings.service_token.get_secret_value(),
        LogsOut,
        params={"tail": tail},
    )


@router.post("/{api_id}/start", status_code=status.HTTP_202_ACCEPTED)
async def start(api_id: str, user: Developer, session: Session, state: State) -> DeployOut:
    """Start a stopped (or crash-looping) API again with the version it last ran."""
    api = await get_owned_or_404(session, api_id, user)
    return await service.start(session, state.builds, api, user)


@router.post("/{api_id}/restart")
async def restart(api_id: str, user: Developer, session: Session, state: State) -> RestartOut:
    """Restart the running container in place and wait until it answers again."""
    api = await get_owned_or_404(session, api_id, user)
    ensure_not_suspended(api)
    return await call_service(
        state.services,
        "POST",
        f"{state.settings.executor_url}/internal/v1/apis/{api.id}/restart",
        state.settings.service_token.get_secret_value(),
        RestartOut,
        timeout=RESTART_TIMEOUT_SECONDS,
    )


@router.post("/{api_id}/stop", status_code=status.HTTP_202_ACCEPTED)
async def stop(api_id: str, user: Developer, session: Session, state: State) -> dict[str, str]:
    api = await get_owned_or_404(session, api_id, user)
    await state.builds.enqueue(STOP_JOB, api.id)
    return {"api_id": api.id, "status": "stopping"}
