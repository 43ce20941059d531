"""Helpers for the admin moderation tests: an admin, a data plane in the test, a fake
running deployment, and what the gateway queued and logged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import web
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dataplane.app import DataPlane
from shared.invalidation import KEYS_CHANNEL, ROUTES_CHANNEL
from shared.models import Api, ApiVersion, Deployment, User
from shared.settings import DataPlaneSettings, GatewaySettings
from tests.integration.conftest import signup
from tests.services import free_port

Sessions = async_sessionmaker[AsyncSession]


async def admin_headers(
    gateway: httpx.AsyncClient, sessions: Sessions
) -> tuple[dict[str, str], str]:
    """A new account made admin in the database (sign-up never hands out the role)."""
    headers = await signup(gateway)
    user_id: str = (await gateway.get("/api/v1/auth/me", headers=headers)).json()["id"]
    async with sessions() as session:
        await session.execute(update(User).where(User.id == user_id).values(role="admin"))
        await session.commit()
    return headers, user_id


async def user_id_of(gateway: httpx.AsyncClient, headers: dict[str, str]) -> str:
    user_id: str = (await gateway.get("/api/v1/auth/me", headers=headers)).json()["id"]
    return user_id


async def serve_from(sessions: Sessions, api_id: str, endpoint: str) -> str:
    """Route the API to `endpoint` as if its latest version had been deployed there."""
    async with sessions() as session:
        api = await session.get(Api, api_id)
        assert api is not None
        version = await session.scalar(
            select(ApiVersion).where(ApiVersion.api_id == api_id).order_by(ApiVersion.number.desc())
        )
        assert version is not None, "upload a version first"
        deployment = Deployment(
            api_id=api_id,
            version_id=version.id,
            status="running",
            endpoint=endpoint,
            requested_by=api.owner_id,
        )
        session.add(deployment)
        await session.flush()
        api.active_deployment_id = deployment.id
        await session.commit()
        return deployment.id


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path})


@asynccontextmanager
async def echo_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def data_plane(settings: DataPlaneSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """One data-plane worker in the test, once it follows both invalidation channels
    (a message published before it subscribed would be lost to it)."""
    plane = DataPlane(settings)
    await plane.startup()
    try:
        for _ in range(200):
            counts = dict(await redis.pubsub_numsub(ROUTES_CHANNEL, KEYS_CHANNEL))
            if all(counts.get(c.encode(), 0) >= 1 for c in (ROUTES_CHANNEL, KEYS_CHANNEL)):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the data plane never subscribed to its invalidation feeds")
        transport = httpx.ASGITransport(app=plane)
        async with httpx.AsyncClient(transport=transport, base_url="http://dp") as client:
            yield client
    finally:
        await plane.shutdown()


async def eventually(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], status: int, within: float = 2.0
) -> httpx.Response:
    """GET `path` until it answers `status` (invalidations travel by pub/sub)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        response = await client.get(path, headers=headers)
        if response.status_code == status or loop.time() > deadline:
            return response
        await asyncio.sleep(0.02)


def queued_jobs(settings: GatewaySettings) -> list[tuple[str | None, tuple[Any, ...]]]:
    connection = SyncRedis.from_url(settings.redis_url)
    try:
        jobs = Queue(settings.build_queue, connection=connection).get_jobs()
        return [(job.func_name, tuple(job.args)) for job in jobs]
    finally:
        connection.close()


async def audit_entries(gateway: httpx.AsyncClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    response = await gateway.get("/api/v1/admin/audit-log", headers=admin)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries
