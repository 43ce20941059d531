"""Remaining daily and monthly quota, read from the data plane's own counters.

The data plane counts admitted calls in Redis (gateway/dataplane/limits.py); reading
the same keys tells a subscriber exactly what the data plane will enforce. Where a
counter is missing (no quota of that kind on the plan, Redis restarted or
unreachable) the stored count of billable calls stands in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.dataplane.limits import keys_for, windows_at
from shared.models import Plan

# The key prefix of the data plane's Limiter (its default, which the data plane uses).
LIMITS_KEY_PREFIX = "veil:rl"


class QuotaState(BaseModel):
    quota: int | None  # null: no quota of this kind
    used: int
    remaining: int | None
    resets_at: datetime
    source: Literal["live", "stored"]  # the data plane's counter, or stored calls


class Quotas(BaseModel):
    daily: QuotaState
    monthly: QuotaState


def _as_int(value: bytes | str | None) -> int | None:
    return None if value is None else int(value)


async def live_counters(
    redis: Redis, subscription_id: str, now: float
) -> tuple[int | None, int | None]:
    """The data plane's day and month counters of the subscription (None: no counter)."""
    _, day_key, month_key = keys_for(LIMITS_KEY_PREFIX, subscription_id, windows_at(now))
    try:
        day, month = await redis.mget(day_key, month_key)
    except (RedisError, OSError):
        return None, None
    return _as_int(day), _as_int(month)


def quota_state(quota: int | None, live: int | None, stored: int, resets_at: float) -> QuotaState:
    used = live if live is not None else stored
    return QuotaState(
        quota=quota,
        used=used,
        remaining=None if quota is None else max(0, quota - used),
        resets_at=datetime.fromtimestamp(resets_at, UTC),
        source="live" if live is not None else "stored",
    )


async def quotas(
    redis: Redis,
    subscription_id: str,
    plan: Plan,
    stored_today: int,
    stored_month: int,
    now: float | None = None,
) -> Quotas:
    now = time.time() if now is None else now
    windows = windows_at(now)
    day, month = await live_counters(redis, subscription_id, now)
    return Quotas(
        daily=quota_state(plan.daily_quota, day, stored_today, windows.day_end),
        monthly=quota_state(plan.monthly_quota, month, stored_month, windows.month_end),
    )
