"""The executor's internal endpoints (service token only): logs, live usage, restart."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query

from executor import repository
from executor.deploy import labels_for_platform
from executor.deps import Session, State
from executor.docker_adapter import ContainerUsage, DockerAdapter, ManagedContainer
from executor.schemas import ContainerList, ContainerOut, LogsOut, RestartOut
from shared.errors import NotFound, VeilError
from shared.http.service_auth import ServiceOnly
from shared.invalidation import invalidate, route
from shared.models.base import utcnow

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.get("/apis/{api_id}/logs")
async def api_logs(
    api_id: str,
    _auth: ServiceOnly,
    state: State,
    session: Session,
    tail: int = Query(default=200, ge=1, le=5000),
) -> LogsOut:
    active = await repository.active_deployment(session, api_id)
    if active is None or not active.container_id:
        raise NotFound("This API has no running container.", code="not_running")
    logs = await asyncio.to_thread(state.docker.logs, active.container_id, tail)
    return LogsOut(api_id=api_id, deployment_id=active.id, logs=logs)


async def _with_usage(docker: DockerAdapter, container: ManagedContainer) -> ContainerOut:
    usage: ContainerUsage | None = None
    if container.state.running:
        try:
            usage = await asyncio.to_thread(docker.usage, container.id)
        except VeilError:
            usage = None  # it stopped between the listing and the sample
    return ContainerOut(
        container_id=container.id,
        name=container.name,
        api_id=container.labels.get("veil.api_id"),
        deployment_id=container.labels.get("veil.deployment_id"),
        state=container.state.status,
        running=container.state.running,
        exit_code=container.state.exit_code,
        oom_killed=container.state.oom_killed,
        **(usage.__dict__ if usage is not None else {}),
    )


@router.get("/containers")
async def containers(_auth: ServiceOnly, state: State) -> ContainerList:
    """Every function container of this platform with live CPU, memory and pids."""
    listed = await asyncio.to_thread(
        state.docker.managed_containers, labels_for_platform(state.settings)
    )
    # Each sample takes about a second: take them all at once.
    items = await asyncio.gather(*(_with_usage(state.docker, c) for c in listed))
    return ContainerList(items=list(items), sampled_at=utcnow())


@router.post("/apis/{api_id}/restart")
async def restart(api_id: str, _auth: ServiceOnly, state: State, session: Session) -> RestartOut:
    """Restart the API's serving container and wait until it answers again."""
    active = await repository.active_deployment(session, api_id)
    if active is None or not active.container_id or active.status != "running":
        raise NotFound("This API has no running container.", code="not_running")
    await asyncio.to_thread(state.docker.restart, active.container_id)
    active.endpoint = await asyncio.to_thread(state.deployer.await_ready, active.container_id)
    slug = await repository.api_slug(session, api_id)
    if slug is not None:
        invalidate(session, route(slug))  # published when the session commits
    return RestartOut(api_id=api_id, deployment_id=active.id, status="running")
