"""Rows the data-plane tests seed directly (no control plane in between)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import ApiVersion, Deployment


def version_row(api_id: str, owner_id: str, version_id: str, number: int = 1) -> ApiVersion:
    """An uploaded single-file Python server (the data plane reads only its number)."""
    return ApiVersion(
        id=version_id,
        api_id=api_id,
        number=number,
        sha256="0" * 64,
        size_bytes=1,
        filename="main.py",
        archive_kind="file",
        runtime="python",
        contract="server",
        entry="main.py",
        file_count=1,
        uploaded_by=owner_id,
    )


def running_deployment(
    deployment_id: str, version: ApiVersion, endpoint: str, owner_id: str
) -> Deployment:
    return Deployment(
        id=deployment_id,
        api_id=version.api_id,
        version_id=version.id,
        status="running",
        endpoint=endpoint,
        requested_by=owner_id,
    )


async def add_in_order(session: AsyncSession, *batches: Sequence[Any]) -> None:
    """No ORM relationships: each batch of parents is flushed before its children."""
    for rows in batches:
        session.add_all(rows)
        await session.flush()
