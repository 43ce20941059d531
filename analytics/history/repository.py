"""SQL for the execution history: keyset pages over (started_at, event_id), newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Execution as E


@dataclass(frozen=True)
class HistoryFilter:
    api_id: str
    since: datetime | None = None
    until: datetime | None = None
    status: int | None = None  # an exact status code …
    status_class: int | None = None  # … or a class: 2 for 2xx
    key_id: str | None = None
    subscription_id: str | None = None
    version: int | None = None


def _conditions(f: HistoryFilter) -> list[ColumnElement[bool]]:
    out = [E.api_id == f.api_id]
    if f.since is not None:
        out.append(E.started_at >= f.since)
    if f.until is not None:
        out.append(E.started_at < f.until)
    if f.status is not None:
        out.append(E.status_code == f.status)
    if f.status_class is not None:
        out += [E.status_code >= f.status_class * 100, E.status_code < f.status_class * 100 + 100]
    if f.key_id is not None:
        out.append(E.key_id == f.key_id)
    if f.subscription_id is not None:
        out.append(E.subscription_id == f.subscription_id)
    if f.version is not None:
        out.append(E.version == f.version)
    return out


async def page(
    session: AsyncSession,
    f: HistoryFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[E]:
    """Up to `limit` executions older than `after` (started_at, event_id), newest first."""
    conditions = _conditions(f)
    if after is not None:
        at, event_id = after
        # started_at <= at narrows the index range; the OR breaks ties on the id.
        conditions += [
            E.started_at <= at,
            or_(E.started_at < at, and_(E.started_at == at, E.event_id < event_id)),
        ]
    result = await session.execute(
        select(E).where(*conditions).order_by(E.started_at.desc(), E.event_id.desc()).limit(limit)
    )
    return result.scalars().all()
