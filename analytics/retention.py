"""Raw executions are kept `raw_retention_days`; the rollups (all stats) are kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Execution

CHUNK = 10_000  # rows per delete and commit: short transactions, ingestion keeps going


async def purge_raw(sessions: async_sessionmaker[AsyncSession], before: datetime) -> int:
    """Delete raw executions that started before `before`, a chunk per transaction."""
    deleted = 0
    while True:
        async with sessions() as session:
            oldest = (
                select(Execution.event_id).where(Execution.started_at < before).limit(CHUNK)
            ).scalar_subquery()
            result = await session.execute(
                delete(Execution)
                .where(Execution.event_id.in_(oldest))
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        count = int(result.rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < CHUNK:
            return deleted
