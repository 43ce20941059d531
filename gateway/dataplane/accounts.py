"""Whether an account may still call with its access token, cached in memory.

Access tokens live 15 minutes and carry no state; the control plane checks the
account on every request, and the data plane does it here for the owner or
admin calling with a bearer token, so a suspended account is refused at once
rather than when its token expires. Suspending or lifting publishes
`user:<id>` on the keys channel, which drops the entry on every worker.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dataplane.cache import LoadingCache
from shared.events import USER_INVALIDATION_PREFIX
from shared.models import User


class AccountCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_seconds: float) -> None:
        self._sessions = sessions
        self._cache: LoadingCache[str, bool] = LoadingCache(self._load, ttl_seconds)

    async def usable(self, user_id: str) -> bool:
        """False for an account that is suspended, switched off or gone."""
        return await self._cache.get(user_id)

    async def _load(self, user_id: str) -> bool:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(User.suspended_at, User.is_active).where(User.id == user_id)
                )
            ).first()
        return row is not None and row.suspended_at is None and bool(row.is_active)

    def invalidate(self, user_id: str | None = None) -> None:
        self._cache.invalidate(user_id)


def split_key_message(message: str | None) -> tuple[str, str | None]:
    """A keys-channel message → ("key", hash) or ("user", id); None: ("all", None)."""
    if message is None:
        return "all", None
    if message.startswith(USER_INVALIDATION_PREFIX):
        return "user", message[len(USER_INVALIDATION_PREFIX) :]
    return "key", message
