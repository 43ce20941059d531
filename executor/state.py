"""Everything the executor's API creates at startup, held on `app.state.veil`."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from executor.deploy import Deployer
from executor.docker_adapter import DockerAdapter
from shared.settings import ExecutorSettings


@dataclass
class ExecutorState:
    settings: ExecutorSettings
    engine: AsyncEngine
    # Route changes their sessions commit are published from the commit (the
    # deployer attaches a SyncPublisher: shared/invalidation.py).
    sessions: async_sessionmaker[AsyncSession]
    docker: DockerAdapter
    redis: Redis
    deployer: Deployer
    publisher: None = None  # the sessionmaker publishes from the commit instead
