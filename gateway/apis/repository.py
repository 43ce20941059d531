from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Api, ApiVersion


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    result = await session.execute(select(Api.id).where(Api.slug == slug))
    return result.first() is not None


async def list_owned(session: AsyncSession, owner_id: str) -> Sequence[Api]:
    result = await session.execute(
        select(Api).where(Api.owner_id == owner_id).order_by(Api.created_at.desc())
    )
    return result.scalars().all()


async def get_owned(session: AsyncSession, api_id: str, owner_id: str) -> Api | None:
    result = await session.execute(select(Api).where(Api.id == api_id, Api.owner_id == owner_id))
    return result.scalar_one_or_none()


async def latest_version_number(session: AsyncSession, api_id: str) -> int:
    result = await session.execute(
        select(func.max(ApiVersion.number)).where(ApiVersion.api_id == api_id)
    )
    return int(result.scalar_one() or 0)


async def get_version(session: AsyncSession, api_id: str, number: int) -> ApiVersion | None:
    result = await session.execute(
        select(ApiVersion).where(ApiVersion.api_id == api_id, ApiVersion.number == number)
    )
    return result.scalar_one_or_none()


async def list_versions(session: AsyncSession, api_id: str) -> Sequence[ApiVersion]:
    result = await session.execute(
        select(ApiVersion).where(ApiVersion.api_id == api_id).order_by(ApiVersion.number.desc())
    )
    return result.scalars().all()
