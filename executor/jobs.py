"""rq job entry points. Each runs in the worker's forked child with a fresh event loop.

Settings come from the environment the worker was started with; engines and
clients are created per job and closed at its end, never shared across forks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor import repository
from executor.deploy import Deployer
from executor.docker_adapter import DockerAdapter
from shared.db import create_engine, create_sessionmaker
from shared.invalidation import SyncPublisher, publish_on_commit
from shared.settings import ExecutorSettings

log = logging.getLogger("veil.executor.jobs")


@dataclass
class JobContext:
    settings: ExecutorSettings
    sessions: async_sessionmaker[AsyncSession]
    docker: DockerAdapter
    redis: Redis


@asynccontextmanager
async def job_context() -> AsyncIterator[JobContext]:
    settings = ExecutorSettings()
    engine = create_engine(settings.resolved_database_url, settings.database_timeouts)
    docker = DockerAdapter.from_env()
    redis = Redis.from_url(settings.redis_url)
    sessions = create_sessionmaker(engine)
    publish_on_commit(sessions, SyncPublisher(redis))  # stop_api's route change
    try:
        yield JobContext(settings, sessions, docker, redis)
    finally:
        redis.close()
        docker.close()
        await engine.dispose()


def deploy(deployment_id: str) -> None:
    async def run() -> None:
        async with job_context() as ctx:
            await Deployer(ctx.settings, ctx.sessions, ctx.docker, ctx.redis).run(deployment_id)

    asyncio.run(run())


def stop_api(api_id: str) -> None:
    """Stop the API's running container and take it off the data plane."""

    async def run() -> None:
        async with job_context() as ctx, ctx.sessions() as session:
            active = await repository.active_deployment(session, api_id)
            await repository.clear_route(session, api_id)
            if active is not None:
                await repository.mark_stopped(session, active.id)
            await session.commit()  # the data plane drops this API's route
            if active is not None and active.container_id:
                await asyncio.to_thread(ctx.docker.remove_container, active.container_id, 5)

    asyncio.run(run())


def teardown_api(api_id: str) -> None:
    """Remove every container and image of a deleted API."""

    def remove(docker: DockerAdapter, labels: dict[str, str]) -> None:
        for container_id in docker.find_containers(labels):
            docker.remove_container(container_id, stop_timeout=2)
        for image_id in docker.find_images(labels):
            docker.remove_image(image_id)

    async def run() -> None:
        async with job_context() as ctx:
            # The API's route went with its row (the gateway told the data plane).
            labels = {"veil.api_id": api_id, "veil.instance": ctx.settings.instance_label}
            await asyncio.to_thread(remove, ctx.docker, labels)

    asyncio.run(run())
