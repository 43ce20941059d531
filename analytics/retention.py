"""Raw executions are kept `raw_retention_days`; the rollups (all stats) are kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Execution

CHUNK = 10_000  # rows per delete and commit: short transactions, ingestion keeps going

# The APIs with raw executions: one probe of the (api_id, started_at) index per API
# rather than a scan of the table (a "loose index scan"; PostgreSQL and SQLite).
_APIS = text(
    """
WITH RECURSIVE apis (api_id) AS (
    SELECT min(api_id) FROM executions
    UNION ALL
    SELECT (SELECT min(e.api_id) FROM executions AS e WHERE e.api_id > apis.api_id)
    FROM apis WHERE apis.api_id IS NOT NULL
)
SELECT api_id FROM apis WHERE api_id IS NOT NULL
"""
)


async def purge_raw(sessions: async_sessionmaker[AsyncSession], before: datetime) -> int:
    """Delete raw executions that started before `before`, a chunk per transaction.

    API by API, through the index on (api_id, started_at): executions have no index
    on the time alone, which every stored event would pay for.
    """
    async with sessions() as session:
        apis = list((await session.execute(_APIS)).scalars())
    deleted = 0
    for api_id in apis:
        while True:
            async with sessions() as session:
                # In the index's order: an index range scan, whatever the API's share.
                oldest = (
                    select(Execution.event_id)
                    .where(Execution.api_id == api_id, Execution.started_at < before)
                    .order_by(Execution.started_at)
                    .limit(CHUNK)
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
                break
    return deleted
