"""slug → where its running container listens, cached in memory.

Entries expire after a short TTL and are dropped at once when the executor
publishes a change on the routes channel (deploy, stop, delete); see cache.py
for how expiry and invalidation behave under load.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dataplane.cache import LoadingCache, Missing
from shared.crypto import gateway_secret
from shared.db import database_call
from shared.models import Api, ApiVersion, Deployment


@dataclass(frozen=True)
class Route:
    api_id: str
    slug: str
    owner_id: str
    deployment_id: str | None
    endpoint: str | None  # None: the API has no running container
    timeout_seconds: float | None = None  # the API's own; None: the platform default
    max_concurrency: int | None = None  # calls in flight at once; None: no limit
    max_response_mb: int | None = None  # the API's own cap; None: the platform's
    version: int | None = None  # the version the running deployment serves
    gateway_secret: bytes = b""  # sent upstream as X-Veil-Gateway-Secret
    suspended: bool = False  # an admin suspended the API (or its owner): every call is 403


class RouteTable:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ttl_seconds: float, secrets_key: str
    ) -> None:
        self._sessions = sessions
        self._secrets_key = secrets_key
        self._cache: LoadingCache[str, Route | None] = LoadingCache(self._load, ttl_seconds)

    async def resolve(self, slug: str) -> Route | None:
        route = self._cache.peek(slug)
        return await self._cache.get(slug) if isinstance(route, Missing) else route

    @database_call
    async def _load(self, slug: str) -> Route | None:
        async with self._sessions() as session:
            result = await session.execute(
                select(
                    Api.id,
                    Api.owner_id,
                    Deployment.id,
                    Deployment.endpoint,
                    Deployment.status,
                    Api.timeout_seconds,
                    Api.max_concurrency,
                    Api.max_response_mb,
                    ApiVersion.number,
                    Api.suspended_at,
                )
                .outerjoin(Deployment, Deployment.id == Api.active_deployment_id)
                .outerjoin(ApiVersion, ApiVersion.id == Deployment.version_id)
                .where(Api.slug == slug)
            )
            row = result.first()
        if row is None:
            return None
        (
            api_id,
            owner_id,
            deployment_id,
            endpoint,
            status,
            timeout,
            concurrency,
            max_response_mb,
            version,
            suspended_at,
        ) = row
        running = status == "running" and endpoint is not None
        return Route(
            api_id=api_id,
            slug=slug,
            owner_id=owner_id,
            deployment_id=deployment_id if running else None,
            endpoint=endpoint if running else None,
            timeout_seconds=timeout,
            max_concurrency=concurrency,
            max_response_mb=max_response_mb,
            version=version if running else None,
            gateway_secret=gateway_secret(self._secrets_key, api_id).encode(),
            suspended=suspended_at is not None,
        )

    def invalidate(self, slug: str | None = None) -> None:
        self._cache.invalidate(None if slug == "*" else slug)
