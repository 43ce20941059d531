"""API key → who is calling and under which plan, cached in memory.

Only the SHA-256 of a key is ever looked up. Entries (misses too, so a flood of
made-up keys costs one query each, not one per call) live `ttl` seconds and are
dropped at once when the control plane publishes on the keys channel (revoke,
rotate, cancel, plan change), so a revoked key stops working everywhere within
the pub/sub delay — milliseconds — rather than the TTL.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dataplane.cache import LoadingCache, Missing
from gateway.dataplane.limits import Policy
from shared.db import database_call
from shared.models import ApiKey, Plan, Subscription, User


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    subscription_id: str
    consumer_id: str
    api_id: str
    policy: Policy


class KeyCache:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ttl_seconds: float = 60.0,
        max_entries: int = 100_000,
    ) -> None:
        self._sessions = sessions
        self._cache: LoadingCache[str, KeyInfo | None] = LoadingCache(
            self._load, ttl_seconds, max_entries
        )

    def cached(self, key_hash: str) -> KeyInfo | Missing | None:
        """The cached answer for this hash (live key or known miss), without awaiting."""
        return self._cache.peek(key_hash)

    async def lookup(self, key_hash: str) -> KeyInfo | None:
        """The live key with this hash (not revoked, subscription active), or None."""
        return await self._cache.get(key_hash)

    @database_call
    async def _load(self, key_hash: str) -> KeyInfo | None:
        async with self._sessions() as session:
            result = await session.execute(
                select(
                    ApiKey.id,
                    ApiKey.subscription_id,
                    ApiKey.consumer_id,
                    ApiKey.api_id,
                    Plan.rate_per_second,
                    Plan.burst,
                    Plan.daily_quota,
                    Plan.monthly_quota,
                )
                .join(Subscription, Subscription.id == ApiKey.subscription_id)
                .join(Plan, Plan.id == Subscription.plan_id)
                .join(User, User.id == ApiKey.consumer_id)
                .where(
                    ApiKey.key_hash == key_hash,
                    ApiKey.revoked_at.is_(None),
                    Subscription.status == "active",
                    User.suspended_at.is_(None),  # a suspended consumer's keys stop working
                )
            )
            row = result.first()
        if row is None:
            return None
        key_id, subscription_id, consumer_id, api_id, rate, burst, daily, monthly = row
        return KeyInfo(
            key_id=key_id,
            subscription_id=subscription_id,
            consumer_id=consumer_id,
            api_id=api_id,
            policy=Policy(
                rate_per_second=rate, burst=burst, daily_quota=daily, monthly_quota=monthly
            ),
        )

    def invalidate(self, key_hash: str | None = None) -> None:
        self._cache.invalidate(key_hash)
