from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import ExecutionEvent
from shared.models import Execution


async def insert_executions(session: AsyncSession, events: Sequence[ExecutionEvent]) -> None:
    """Insert many; an event id seen before is skipped, which makes redelivery harmless."""
    if not events:
        return
    rows = [asdict(e) for e in events]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(Execution).values(rows).on_conflict_do_nothing(index_elements=["event_id"])
    await session.execute(statement)
