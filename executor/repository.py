"""SQL the executor needs: deployments, their versions and APIs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.invalidation import invalidate, route
from shared.models import Api, ApiSecret, ApiVersion, Deployment
from shared.models.base import utcnow
from shared.models.deployment import IN_PROGRESS_STATUSES


async def load_deployment(
    session: AsyncSession, deployment_id: str
) -> tuple[Deployment, ApiVersion, Api] | None:
    result = await session.execute(
        select(Deployment, ApiVersion, Api)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .join(Api, Api.id == Deployment.api_id)
        .where(Deployment.id == deployment_id)
    )
    row = result.first()
    return None if row is None else (row[0], row[1], row[2])


async def api_secrets(session: AsyncSession, api_id: str) -> dict[str, str]:
    """The API's secrets as name → ciphertext; `shared.crypto` opens them at container start."""
    result = await session.execute(
        select(ApiSecret.name, ApiSecret.ciphertext).where(ApiSecret.api_id == api_id)
    )
    return {name: ciphertext for name, ciphertext in result.all()}


async def active_deployment(session: AsyncSession, api_id: str) -> Deployment | None:
    result = await session.execute(
        select(Deployment)
        .join(Api, Api.active_deployment_id == Deployment.id)
        .where(Api.id == api_id)
    )
    return result.scalar_one_or_none()


async def switch_route(session: AsyncSession, api_id: str, deployment_id: str) -> str | None:
    """Point the API at `deployment_id` in one UPDATE; return the deployment it replaced.
    The data plane drops its cached route once the session commits."""
    previous = await session.scalar(select(Api.active_deployment_id).where(Api.id == api_id))
    await _set_route(session, api_id, deployment_id)
    return previous


async def clear_route(session: AsyncSession, api_id: str) -> None:
    """Take the API off the data plane (once the session commits)."""
    await _set_route(session, api_id, None)


async def _set_route(session: AsyncSession, api_id: str, deployment_id: str | None) -> None:
    slug = await session.scalar(
        update(Api)
        .where(Api.id == api_id)
        .values(active_deployment_id=deployment_id)
        .returning(Api.slug)
    )
    if slug is not None:
        invalidate(session, route(slug))


class LeaseLost(Exception):
    """Another job took this deployment over (a worker restarted and resumed it):
    this one must change nothing more."""


async def take_lease(session: AsyncSession, deployment_id: str) -> str | None:
    """Claim an in-progress deployment for this job (committed); None: nothing to do.

    Taken over unconditionally: a job that held it before died with its worker
    (the work horse dies with it), and if it somehow runs on, its next state change
    finds the lease gone (hold_lease) and it stops.
    """
    lease = str(uuid.uuid4())
    result = await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.status.in_(IN_PROGRESS_STATUSES))
        .values(lease=lease)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return lease if _rowcount(result) == 1 else None


async def hold_lease(session: AsyncSession, deployment_id: str, lease: str) -> None:
    """Before a commit: still ours? The no-op UPDATE also locks the row (PostgreSQL) or
    the database (SQLite) until the commit, so the lease cannot change in between."""
    result = await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.lease == lease)
        .values(lease=lease)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        raise LeaseLost(deployment_id)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def mark_failed(
    session: AsyncSession,
    deployment_id: str,
    reason: str,
    log_tail: str | None,
    lease: str | None = None,
) -> None:
    """Failed, with the reason; with `lease`, only while that lease holds."""
    condition = [Deployment.id == deployment_id]
    if lease is not None:
        condition.append(Deployment.lease == lease)
    await session.execute(
        update(Deployment)
        .where(*condition)
        .values(status="failed", error=reason, log_tail=log_tail, finished_at=utcnow())
    )


async def mark_stopped(session: AsyncSession, deployment_id: str) -> None:
    await session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id)
        .values(status="stopped", endpoint=None, finished_at=utcnow())
    )


async def deployments_by_ids(session: AsyncSession, ids: list[str]) -> dict[str, Deployment]:
    if not ids:
        return {}
    result = await session.execute(select(Deployment).where(Deployment.id.in_(ids)))
    return {d.id: d for d in result.scalars()}


async def running_active(session: AsyncSession) -> list[tuple[Deployment, ApiVersion, Api]]:
    """Deployments that are their API's route and should be serving."""
    result = await session.execute(
        select(Deployment, ApiVersion, Api)
        .join(Api, Api.active_deployment_id == Deployment.id)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .where(Deployment.status == "running")
    )
    return [(row[0], row[1], row[2]) for row in result.all()]


async def in_progress(session: AsyncSession) -> list[Deployment]:
    result = await session.execute(
        select(Deployment).where(Deployment.status.in_(IN_PROGRESS_STATUSES))
    )
    return list(result.scalars())


async def api_slug(session: AsyncSession, api_id: str) -> str | None:
    return await session.scalar(select(Api.slug).where(Api.id == api_id))
