"""The executor's internal API on :8081, for the gateway only (service token)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel
from redis import Redis

from executor import repository
from executor.deploy import Deployer
from executor.docker_adapter import DockerAdapter
from executor.reconciler import Reconciler, reconcile_forever
from shared.db import create_engine, create_sessionmaker
from shared.errors import NotFound
from shared.http.app import create_service_app
from shared.http.service_auth import ServiceOnly
from shared.settings import ExecutorSettings


class LogsOut(BaseModel):
    api_id: str
    deployment_id: str
    logs: str


def create_app(settings: ExecutorSettings | None = None) -> FastAPI:
    settings = settings or ExecutorSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        sessions = create_sessionmaker(engine)
        docker = DockerAdapter.from_env()
        redis = Redis.from_url(settings.redis_url)
        app.state.settings = settings
        app.state.sessions = sessions
        app.state.docker = docker
        reconciler = Reconciler(Deployer(settings, sessions, docker, redis), sessions)
        task = asyncio.create_task(
            reconcile_forever(reconciler, settings.reconcile_interval_seconds)
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            redis.close()
            docker.close()
            await engine.dispose()

    app = create_service_app("Veil executor", lifespan, description="Internal: containers.")

    @app.get("/internal/v1/apis/{api_id}/logs")
    async def api_logs(
        api_id: str,
        request: Request,
        _auth: ServiceOnly,
        tail: int = Query(default=200, ge=1, le=5000),
    ) -> LogsOut:
        async with request.app.state.sessions() as session:
            active = await repository.active_deployment(session, api_id)
        if active is None or not active.container_id:
            raise NotFound("This API has no running container.", code="not_running")
        docker: DockerAdapter = request.app.state.docker
        logs = await asyncio.to_thread(docker.logs, active.container_id, tail)
        return LogsOut(api_id=api_id, deployment_id=active.id, logs=logs)

    return app
