"""SQL for the marketplace: public APIs with their owner and whether they run."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Row, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Api, Deployment, User

# An API, its owner's email, and the status of the deployment it routes to (or None).
Listing = Row[Api, str, str | None]


def _listing() -> Select[Api, str, str | None]:
    return (
        select(Api, User.email, Deployment.status)
        .join(User, User.id == Api.owner_id)
        .outerjoin(Deployment, Deployment.id == Api.active_deployment_id)
    )


def _public_matching(query: str | None) -> list[ColumnElement[bool]]:
    # A suspended API leaves the marketplace until an admin lifts the suspension.
    conditions: list[ColumnElement[bool]] = [
        Api.visibility == "public",
        Api.suspended_at.is_(None),
    ]
    if query:
        conditions.append(
            or_(
                Api.name.icontains(query, autoescape=True),
                Api.slug.icontains(query, autoescape=True),
                Api.description.icontains(query, autoescape=True),
            )
        )
    return conditions


async def search_public(
    session: AsyncSession, query: str | None, limit: int, offset: int
) -> tuple[Sequence[Listing], int]:
    """One page of public APIs matching `query` (case-insensitive substring), and the total."""
    conditions = _public_matching(query)
    total = await session.scalar(select(func.count()).select_from(Api).where(*conditions))
    result = await session.execute(
        _listing().where(*conditions).order_by(Api.name, Api.id).limit(limit).offset(offset)
    )
    return result.all(), int(total or 0)


async def get_listing(session: AsyncSession, api_id: str) -> Listing | None:
    """Any API, public or not: visibility is the service's decision."""
    result = await session.execute(_listing().where(Api.id == api_id))
    return result.first()
