"""Everything the control plane creates at startup, held on `app.state.veil`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.auth.throttle import LoginThrottle
from gateway.build_queue import BuildQueue
from shared.blobs import BlobStore
from shared.invalidation import AsyncPublisher
from shared.settings import GatewaySettings


@dataclass
class GatewayState:
    settings: GatewaySettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    blobs: BlobStore
    builds: BuildQueue
    # For service-to-service calls (executor, analytics); not on the data-plane hot path.
    services: httpx.AsyncClient
    login_throttle: LoginThrottle
    # Publishes what a request's session invalidated, after its commit (gateway/deps.py).
    publisher: AsyncPublisher
