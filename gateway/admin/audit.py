"""The audit log: one entry per action taken with admin power."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.http.context import current_request_id
from shared.models import AuditEntry, User


def record(
    session: AsyncSession,
    actor: User,
    action: str,
    target_type: str,
    target_id: str,
    **details: Any,
) -> None:
    """Added to the request's session: the entry commits with the action, or not at all."""
    session.add(
        AuditEntry(
            actor_id=actor.id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
            request_id=current_request_id.get(),
        )
    )


async def recent(session: AsyncSession, limit: int) -> Sequence[AuditEntry]:
    result = await session.execute(
        select(AuditEntry).order_by(AuditEntry.created_at.desc()).limit(limit)
    )
    return result.scalars().all()
