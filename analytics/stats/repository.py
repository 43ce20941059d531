from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Execution


def _window(api_id: str, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [
        Execution.api_id == api_id,
        Execution.started_at >= since,
        Execution.started_at < until,
    ]


async def totals(session: AsyncSession, api_id: str, since: datetime, until: datetime) -> Any:
    result = await session.execute(
        select(
            func.count(),
            func.count().filter(Execution.status_code >= 500),
            func.count().filter(Execution.status_code.between(400, 499)),
            func.avg(Execution.latency_ms),
            func.max(Execution.latency_ms),
            func.coalesce(func.sum(Execution.bytes_in), 0),
            func.coalesce(func.sum(Execution.bytes_out), 0),
            func.max(Execution.started_at),
        ).where(*_window(api_id, since, until))
    )
    return result.one()


async def nth_value(
    session: AsyncSession,
    column: Any,
    api_id: str,
    since: datetime,
    until: datetime,
    offset: int,
) -> float | None:
    """The value at rank `offset` (0-based) of `column` sorted ascending, NULLs excluded."""
    result = await session.execute(
        select(column)
        .where(*_window(api_id, since, until), column.is_not(None))
        .order_by(column)
        .offset(offset)
        .limit(1)
    )
    value = result.scalar_one_or_none()
    return None if value is None else float(value)


async def count_not_null(
    session: AsyncSession, column: Any, api_id: str, since: datetime, until: datetime
) -> int:
    result = await session.execute(select(func.count(column)).where(*_window(api_id, since, until)))
    return int(result.scalar_one())
