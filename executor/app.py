"""The executor's internal API on :8081, for the gateway only (service token)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis import Redis

from executor.deploy import Deployer
from executor.docker_adapter import DockerAdapter
from executor.reconciler import Reconciler, reconcile_forever
from executor.routes import router
from executor.state import ExecutorState
from shared.db import create_engine, create_sessionmaker
from shared.http.app import create_service_app
from shared.settings import ExecutorSettings


def create_app(settings: ExecutorSettings | None = None) -> FastAPI:
    settings = settings or ExecutorSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[ExecutorState]:
        engine = create_engine(settings.resolved_database_url, settings.database_timeouts)
        sessions = create_sessionmaker(engine)
        docker = DockerAdapter.from_env()
        redis = Redis.from_url(settings.redis_url)
        state = ExecutorState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            docker=docker,
            redis=redis,
            deployer=Deployer(settings, sessions, docker, redis),
        )
        reconciler = Reconciler(state.deployer, sessions)
        task = asyncio.create_task(
            reconcile_forever(reconciler, settings.container_reconcile_interval_seconds)
        )
        try:
            yield state
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            redis.close()
            docker.close()
            await engine.dispose()

    app = create_service_app("Veil executor", lifespan, description="Internal: containers.")

    app.include_router(router)
    return app
