"""An account's role and whether it may still call with its access token, cached.

Access tokens live 15 minutes and their claims (the role among them) are what the
account was when they were issued; the control plane checks the account on every
request, and the data plane does it here for the owner or admin calling with a
bearer token, so a suspended account or a demoted admin is refused at once rather
than when its token expires. Suspending, lifting or a role change publishes
`user:<id>` on the keys channel, which drops the entry on every worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dataplane.cache import LoadingCache
from shared.db import database_call
from shared.invalidation import USER_INVALIDATION_PREFIX
from shared.models import User


@dataclass(frozen=True)
class Account:
    role: str
    usable: bool  # False: suspended or switched off


class AccountCache:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_seconds: float) -> None:
        self._sessions = sessions
        self._cache: LoadingCache[str, Account | None] = LoadingCache(self._load, ttl_seconds)

    async def get(self, user_id: str) -> Account | None:
        """The account as the database has it now (within a TTL); None: it is gone."""
        return await self._cache.get(user_id)

    @database_call
    async def _load(self, user_id: str) -> Account | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(User.role, User.suspended_at, User.is_active).where(User.id == user_id)
                )
            ).first()
        if row is None:
            return None
        return Account(role=row.role, usable=row.suspended_at is None and bool(row.is_active))

    def invalidate(self, user_id: str | None = None) -> None:
        self._cache.invalidate(user_id)


def split_key_message(message: str | None) -> tuple[str, str | None]:
    """A keys-channel message → ("key", hash) or ("user", id); None: ("all", None)."""
    if message is None:
        return "all", None
    if message.startswith(USER_INVALIDATION_PREFIX):
        return "user", message[len(USER_INVALIDATION_PREFIX) :]
    return "key", message
