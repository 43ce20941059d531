"""The control plane: auth, APIs, uploads, deployments and stats on :8080."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from gateway.admin.revenue import router as revenue_router
from gateway.admin.router import router as admin_router
from gateway.apis.router import router as apis_router
from gateway.auth.router import router as auth_router
from gateway.auth.throttle import LoginThrottle
from gateway.billing.router import router as billing_router
from gateway.build_queue import BuildQueue
from gateway.deployments.router import router as deployments_router
from gateway.marketplace.router import router as marketplace_router
from gateway.plans.router import router as plans_router
from gateway.secrets.router import router as secrets_router
from gateway.state import GatewayState
from gateway.stats.router import router as stats_router
from gateway.subscriptions.router import keys_router, subscribers_router
from gateway.subscriptions.router import router as subscriptions_router
from gateway.web.router import install_web_ui
from shared.blobs import BlobStore
from shared.db import create_engine, create_sessionmaker
from shared.http.app import create_service_app
from shared.invalidation import AsyncPublisher
from shared.settings import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[GatewayState]:
        engine = create_engine(settings.resolved_database_url, settings.database_timeouts)
        blobs = BlobStore(settings.data_dir / "blobs")
        blobs.ensure()
        redis = Redis.from_url(settings.redis_url)
        state = GatewayState(
            settings=settings,
            engine=engine,
            sessions=create_sessionmaker(engine),
            redis=redis,
            blobs=blobs,
            builds=BuildQueue(settings.redis_url, settings.build_queue),
            services=httpx.AsyncClient(timeout=httpx.Timeout(10.0)),
            login_throttle=LoginThrottle(redis, settings),
            publisher=AsyncPublisher(redis),
        )
        try:
            yield state
        finally:
            await state.services.aclose()
            state.builds.close()
            await state.redis.aclose()
            await engine.dispose()

    app = create_service_app(
        "Veil gateway API",
        lifespan,
        description="Control plane: accounts, APIs, uploads, deployments, stats.",
    )
    for router in (
        auth_router,
        apis_router,
        secrets_router,
        deployments_router,
        stats_router,
        admin_router,
        plans_router,
        marketplace_router,
        subscriptions_router,
        keys_router,
        subscribers_router,
        billing_router,
        revenue_router,
    ):
        app.include_router(router)
    install_web_ui(app)
    return app
