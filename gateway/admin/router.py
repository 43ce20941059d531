"""Admin: every deployment with live usage, stop or restart any API, the audit log.

Users, the API list and suspensions live in `admin.moderation`, mounted here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from executor.schemas import ContainerList, ContainerOut, RestartOut
from gateway.admin import audit
from gateway.admin.moderation import router as moderation_router
from gateway.build_queue import STOP_JOB
from gateway.deps import Admin, Session, State
from gateway.internal_client import RESTART_TIMEOUT_SECONDS, call_service
from shared.errors import NotFound
from shared.models import Api, ApiVersion, Deployment, User
from shared.models.deployment import LIVE_STATUSES

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
router.include_router(moderation_router)


class AdminDeployment(BaseModel):
    deployment_id: str
    api_id: str
    api_slug: str
    owner_email: str
    version: int
    status: str
    container: ContainerOut | None  # live state and usage from the executor


class AdminDeploymentList(BaseModel):
    items: list[AdminDeployment]
    sampled_at: datetime | None


class AuditOut(BaseModel):
    id: str
    actor_id: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    request_id: str
    created_at: datetime


class AuditList(BaseModel):
    items: list[AuditOut]


@router.get("/deployments")
async def deployments(_admin: Admin, session: Session, state: State) -> AdminDeploymentList:
    """Deployments that serve or are on their way, with live CPU and memory."""
    rows = await session.execute(
        select(Deployment, Api, ApiVersion, User.email)
        .join(Api, Api.id == Deployment.api_id)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .join(User, User.id == Api.owner_id)
        .where(Deployment.status.in_(LIVE_STATUSES))
        .order_by(Deployment.created_at.desc())
    )
    live = await call_service(
        state.services,
        "GET",
        f"{state.settings.executor_url}/internal/v1/containers",
        state.settings.service_token.get_secret_value(),
        ContainerList,
    )
    by_deployment = {c.deployment_id: c for c in live.items if c.deployment_id}
    items = [
        AdminDeployment(
            deployment_id=d.id,
            api_id=api.id,
            api_slug=api.slug,
            owner_email=email,
            version=version.number,
            status=d.status,
            container=by_deployment.get(d.id),
        )
        for d, api, version, email in rows.all()
    ]
    return AdminDeploymentList(items=items, sampled_at=live.sampled_at)


async def _api_or_404(session: Session, api_id: str) -> Api:
    api = await session.get(Api, api_id)
    if api is None:
        raise NotFound("No API with this id.", code="api_not_found")
    return api


@router.post("/apis/{api_id}/stop", status_code=202)
async def stop_api(api_id: str, admin: Admin, session: Session, state: State) -> dict[str, str]:
    api = await _api_or_404(session, api_id)
    await state.builds.enqueue(STOP_JOB, api.id)
    audit.record(session, admin, "api.stop", "api", api.id, slug=api.slug)
    return {"api_id": api.id, "status": "stopping"}


@router.post("/apis/{api_id}/restart")
async def restart_api(api_id: str, admin: Admin, session: Session, state: State) -> RestartOut:
    api = await _api_or_404(session, api_id)
    restarted = await call_service(
        state.services,
        "POST",
        f"{state.settings.executor_url}/internal/v1/apis/{api.id}/restart",
        state.settings.service_token.get_secret_value(),
        RestartOut,
        timeout=RESTART_TIMEOUT_SECONDS,
    )
    audit.record(session, admin, "api.restart", "api", api.id, slug=api.slug)
    return restarted


@router.get("/audit-log")
async def audit_log(
    _admin: Admin, session: Session, limit: int = Query(default=100, ge=1, le=1000)
) -> AuditList:
    entries = await audit.recent(session, limit)
    return AuditList(
        items=[
            AuditOut(
                id=e.id,
                actor_id=e.actor_id,
                action=e.action,
                target_type=e.target_type,
                target_id=e.target_id,
                details=dict(e.details),
                request_id=e.request_id,
                created_at=e.created_at,
            )
            for e in entries
        ]
    )
