"""SQL for admin moderation: suspensions and the admin lists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.pages import Cursor
from shared.models import Api, ApiKey, Deployment, User
from shared.models.base import utcnow
from shared.models.deployment import WORKING_STATUSES


async def apis_of_owner(session: AsyncSession, owner_id: str) -> Sequence[Api]:
    result = await session.execute(select(Api).where(Api.owner_id == owner_id).order_by(Api.id))
    return result.scalars().all()


async def count_apis(session: AsyncSession, owner_id: str) -> int:
    total = await session.scalar(select(func.count(Api.id)).where(Api.owner_id == owner_id))
    return int(total or 0)


async def cancel_queued_deployments(
    session: AsyncSession, api_ids: Sequence[str], reason: str
) -> None:
    """A queued deployment marked failed is skipped by the worker that dequeues it."""
    if not api_ids:
        return
    await session.execute(
        update(Deployment)
        .where(Deployment.api_id.in_(api_ids), Deployment.status == "queued")
        .values(status="failed", error=reason, finished_at=utcnow())
    )


async def apis_with_containers(session: AsyncSession, api_ids: Sequence[str]) -> set[str]:
    """Those of `api_ids` that serve, or have a deploy under way that will start a container."""
    if not api_ids:
        return set()
    serving = select(Api.id).where(Api.id.in_(api_ids), Api.active_deployment_id.is_not(None))
    deploying = select(Deployment.api_id).where(
        Deployment.api_id.in_(api_ids), Deployment.status.in_(WORKING_STATUSES)
    )
    result = await session.execute(serving.union(deploying))
    return set(result.scalars().all())


async def live_key_hashes(session: AsyncSession, consumer_id: str) -> list[str]:
    result = await session.execute(
        select(ApiKey.key_hash).where(
            ApiKey.consumer_id == consumer_id, ApiKey.revoked_at.is_(None)
        )
    )
    return list(result.scalars().all())


async def users_page(
    session: AsyncSession,
    query: str | None,
    suspended: bool | None,
    after: Cursor | None,
    limit: int,
) -> Sequence[Row[User, int]]:
    """Users newest first, each with how many APIs they own."""
    api_count = (
        select(func.count(Api.id)).where(Api.owner_id == User.id).correlate(User).scalar_subquery()
    )
    statement = select(User, api_count)
    if query:
        statement = statement.where(User.email.icontains(query, autoescape=True))
    if suspended is not None:
        statement = statement.where(
            User.suspended_at.is_not(None) if suspended else User.suspended_at.is_(None)
        )
    if after is not None:
        at, last_id = after
        statement = statement.where(
            or_(User.created_at < at, and_(User.created_at == at, User.id < last_id))
        )
    result = await session.execute(
        statement.order_by(User.created_at.desc(), User.id.desc()).limit(limit)
    )
    return result.all()


async def apis_page(
    session: AsyncSession,
    query: str | None,
    suspended: bool | None,
    after: Cursor | None,
    limit: int,
) -> Sequence[Row[Api, str]]:
    """Every API, newest first, with its owner's email."""
    statement = select(Api, User.email).join(User, User.id == Api.owner_id)
    if query:
        statement = statement.where(
            or_(
                Api.name.icontains(query, autoescape=True),
                Api.slug.icontains(query, autoescape=True),
                User.email.icontains(query, autoescape=True),
            )
        )
    if suspended is not None:
        statement = statement.where(
            Api.suspended_at.is_not(None) if suspended else Api.suspended_at.is_(None)
        )
    if after is not None:
        at, last_id = after
        statement = statement.where(
            or_(Api.created_at < at, and_(Api.created_at == at, Api.id < last_id))
        )
    result = await session.execute(
        statement.order_by(Api.created_at.desc(), Api.id.desc()).limit(limit)
    )
    return result.all()
