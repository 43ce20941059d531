"""Execution history: one call per row, paginated by an opaque keyset cursor.

Raw executions are kept for `raw_retention_days`; older calls are only in the
stats (rollups).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from analytics.history import repository
from analytics.history.repository import HistoryFilter
from analytics.history.schemas import ExecutionOut, ExecutionPage
from analytics.stats.windows import aware
from shared.errors import Unprocessable
from shared.models import Execution
from shared.pagination import decode_cursor as decode_cursor  # the history's cursor
from shared.pagination import encode_cursor as encode_cursor

MAX_LIMIT = 500
_STATUS = re.compile(r"^([1-5])(\d\d|xx)$", re.IGNORECASE)


def parse_status(value: str | None) -> tuple[int | None, int | None]:
    """'404' → (404, None); '5xx' → (None, 5)."""
    if value is None:
        return None, None
    match = _STATUS.match(value.strip())
    if match is None:
        raise Unprocessable(
            "'status' is a status code (404) or a class (5xx).", code="invalid_status_filter"
        )
    if match.group(2).lower() == "xx":
        return None, int(match.group(1))
    return int(value), None


def _out(e: Execution) -> ExecutionOut:
    return ExecutionOut(
        event_id=e.event_id,
        request_id=e.request_id,
        method=e.method,
        path=e.path,
        status_code=e.status_code,
        latency_ms=e.latency_ms,
        upstream_ms=e.upstream_ms,
        gateway_ms=e.gateway_ms,
        bytes_in=e.bytes_in,
        bytes_out=e.bytes_out,
        started_at=e.started_at,
        version=e.version,
        subscription_id=e.subscription_id,
        key_id=e.key_id,
    )


async def history(
    session: AsyncSession,
    api_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str | None = None,
    key_id: str | None = None,
    subscription_id: str | None = None,
    version: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> ExecutionPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise Unprocessable(f"'limit' is 1 to {MAX_LIMIT}.", code="invalid_limit")
    exact, status_class = parse_status(status)
    f = HistoryFilter(
        api_id=api_id,
        since=aware(since) if since else None,
        until=aware(until) if until else None,
        status=exact,
        status_class=status_class,
        key_id=key_id,
        subscription_id=subscription_id,
        version=version,
    )
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.page(session, f, after, limit + 1)
    items = [_out(e) for e in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return ExecutionPage(
        items=items, next_cursor=encode_cursor(last.started_at, last.event_id) if last else None
    )
