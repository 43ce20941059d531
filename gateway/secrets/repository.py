"""SQL for per-API secrets."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ApiSecret


async def list_for_api(session: AsyncSession, api_id: str) -> Sequence[ApiSecret]:
    result = await session.execute(
        select(ApiSecret).where(ApiSecret.api_id == api_id).order_by(ApiSecret.name)
    )
    return result.scalars().all()


async def get(session: AsyncSession, api_id: str, name: str) -> ApiSecret | None:
    result = await session.execute(
        select(ApiSecret).where(ApiSecret.api_id == api_id, ApiSecret.name == name)
    )
    return result.scalar_one_or_none()


async def count_for_api(session: AsyncSession, api_id: str) -> int:
    result = await session.execute(
        select(func.count()).select_from(ApiSecret).where(ApiSecret.api_id == api_id)
    )
    return int(result.scalar_one())
