from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ApiVersion, Deployment


async def latest_for_api(
    session: AsyncSession, api_id: str
) -> tuple[Deployment, ApiVersion] | None:
    result = await session.execute(
        select(Deployment, ApiVersion)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .where(Deployment.api_id == api_id)
        .order_by(Deployment.created_at.desc())
        .limit(1)
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def list_for_api(
    session: AsyncSession, api_id: str, limit: int = 100
) -> list[tuple[Deployment, ApiVersion]]:
    result = await session.execute(
        select(Deployment, ApiVersion)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .where(Deployment.api_id == api_id)
        .order_by(Deployment.created_at.desc())
        .limit(limit)
    )
    return [(row[0], row[1]) for row in result.all()]


async def find_by_idempotency_key(
    session: AsyncSession, api_id: str, key: str
) -> tuple[Deployment, ApiVersion] | None:
    result = await session.execute(
        select(Deployment, ApiVersion)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .where(Deployment.api_id == api_id, Deployment.idempotency_key == key)
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def get_with_version(
    session: AsyncSession, deployment_id: str
) -> tuple[Deployment, ApiVersion] | None:
    result = await session.execute(
        select(Deployment, ApiVersion)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .where(Deployment.id == deployment_id)
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def last_stopped(session: AsyncSession, api_id: str) -> tuple[Deployment, ApiVersion] | None:
    result = await session.execute(
        select(Deployment, ApiVersion)
        .join(ApiVersion, ApiVersion.id == Deployment.version_id)
        .where(Deployment.api_id == api_id, Deployment.status.in_(("stopped", "crash-looping")))
        .order_by(Deployment.created_at.desc())
        .limit(1)
    )
    row = result.first()
    return None if row is None else (row[0], row[1])
