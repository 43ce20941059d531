"""The data plane against a real upstream HTTP server on loopback and real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import update

from gateway.dataplane.app import DataPlane
from gateway.dataplane.resp import KeptConnection
from shared.auth.tokens import issue_access_token
from shared.db import create_engine, create_sessionmaker
from shared.events import ExecutionEvent
from shared.models import Api, Deployment, User
from shared.settings import DataPlaneSettings
from tests.integration.conftest import assert_error
from tests.integration.dataplane_support import add_in_order, running_deployment, version_row
from tests.services import free_port

COOKIES_SET = (
    "theme=dark; Path=/; Domain=localhost; HttpOnly",
    "prefs=1; Path=/settings; domain=.example.com",
    "veil_session=forged; Path=/",
    "__Host-veil_session=forged; Path=/; Secure",
    "__Host-own=1; Path=/; Secure",
)


async def _echo(request: web.Request) -> web.StreamResponse:
    if request.path == "/slow":
        await asyncio.sleep(5)
    if request.path == "/hold":
        await asyncio.sleep(0.5)
    body = await request.read()
    if request.path in ("/big", "/big-streamed"):  # 3 MiB, sized or chunked
        if request.path == "/big":
            return web.Response(body=b"x" * (3 << 20))
        streamed = web.StreamResponse()
        await streamed.prepare(request)
        for _ in range(48):
            await streamed.write(b"x" * (64 << 10))
        await streamed.write_eof()
        return streamed
    if request.path.endswith("/cookies"):  # what a hostile tenant would set
        response = web.Response(text="cookies")
        for cookie in COOKIES_SET:
            response.headers.add("Set-Cookie", cookie)
        return response
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": request.query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode(),
        },
        status=201 if request.method == "POST" else 200,
        headers={"X-Upstream": "yes"},
    )


@pytest.fixture(scope="session")
async def upstream() -> AsyncIterator[str]:
    """One echo server for the run: it keeps no state, and stopping it waits for the
    handlers still running (a `/slow` call a test gave up on sleeps 5 s)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def world(make_settings: Any, upstream: str, redis: Redis) -> AsyncIterator[dict[str, Any]]:
    """Two users, one running API pointing at the upstream, one API that is not running."""
    settings: DataPlaneSettings = make_settings(DataPlaneSettings, upstream_timeout_seconds=1.0)
    engine = create_engine(settings.resolved_database_url)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        owner = User(id="u-owner", email="o@example.com", password_hash="x", role="developer")
        other = User(id="u-other", email="x@example.com", password_hash="x", role="developer")
        api = Api(id="api-1", owner_id=owner.id, name="Echo", slug="echo")
        idle = Api(id="api-2", owner_id=owner.id, name="Idle", slug="idle")
        version = version_row(api.id, owner.id, "v-1")
        deployment = running_deployment("d-1", version, upstream, owner.id)
        await add_in_order(session, [owner, other], [api, idle], [version], [deployment])
        api.active_deployment_id = deployment.id
        await session.commit()
    secret = settings.jwt_secret.get_secret_value()
    plane = DataPlane(settings)
    await plane.startup()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=plane), base_url="http://dp")
    yield {
        "client": client,
        "plane": plane,
        "owner": {
            "Authorization": f"Bearer {issue_access_token('u-owner', 'developer', secret, 60)}"
        },
        "other": {
            "Authorization": f"Bearer {issue_access_token('u-other', 'developer', secret, 60)}"
        },
        "sessions": sessions,
        "redis": redis,
        "settings": settings,
    }
    await client.aclose()
    await plane.shutdown()
    await engine.dispose()


async def _events(world: dict[str, Any]) -> list[ExecutionEvent]:
    """The events in the stream, after the plane's writer has sent what it holds."""
    await world["plane"].events.flush()
    redis: Redis = world["redis"]
    stream: str = world["settings"].events_stream
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(stream)  # type: ignore[assignment]
    return [ExecutionEvent.from_fields(fields) for _, fields in entries]


async def test_forwards_method_path_query_body_and_strips_credentials(
    world: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = world["client"]
    response = await client.post(
        "/echo/items/a%2Fb?x=1&y=two",
        content=b'{"n": 1}',
        headers={
            **world["owner"],
            "Content-Type": "application/json",
            "Cookie": "veil_session=secret; theme=dark",
            "X-Forwarded-For": "6.6.6.6",
            "X-Veil-Gateway-Secret": "forged",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "only for the next hop",
            "X-Custom": "kept",
            "X-Request-Id": "caller-chosen-id-123",
        },
    )
    assert response.status_code == 201, response.text
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/items/a%2Fb?x=1&y=two"
    assert seen["query"] == "x=1&y=two"
    assert seen["body"] == '{"n": 1}'
    assert seen["headers"]["x-custom"] == "kept"
    assert "authorization" not in seen["headers"]
    assert seen["headers"]["cookie"] == "theme=dark"  # the platform's cookie is gone
    assert "x-hop" not in seen["headers"]
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"  # what the gateway saw
    assert seen["headers"]["x-veil-gateway-secret"] != "forged"
    assert len(seen["headers"]["x-veil-gateway-secret"]) == 40
    assert seen["headers"]["x-request-id"] == "caller-chosen-id-123"
    assert response.headers["x-request-id"] == "caller-chosen-id-123"
    assert response.headers["x-upstream"] == "yes"

    events = await _events(world)
    assert len(events) == 1
    event = events[0]
    assert (event.api_id, event.deployment_id, event.caller_id) == ("api-1", "d-1", "u-owner")
    assert (event.method, event.status_code, event.request_id) == (
        "POST",
        201,
        "caller-chosen-id-123",
    )
    assert event.bytes_in == 8
    assert event.bytes_out == len(response.content)
    assert event.upstream_ms is not None
    assert event.latency_ms >= event.upstream_ms
    assert event.gateway_ms is not None
    assert event.gateway_ms >= 0
    assert event.version == 1
    assert event.key_id is None  # the owner's token: unmetered


async def test_answers_in_the_error_shape(world: dict[str, Any]) -> None:
    client: httpx.AsyncClient = world["client"]
    assert_error(await client.get("/nope/x", headers=world["owner"]), 404, "api_not_found")
    assert_error(await client.get("/echo/x"), 401, "missing_api_key")
    garbage = {"X-API-Key": "veil_live_not-a-real-key"}
    assert_error(await client.get("/echo/x", headers=garbage), 401, "invalid_api_key")
    assert_error(await client.get("/echo/a/..%2f..%2fx", headers=world["owner"]), 400)
    bad = {"Authorization": "Bearer not.a.token"}
    assert_error(await client.get("/echo/x", headers=bad), 401, "invalid_token")
    assert_error(await client.get("/echo/x", headers=world["other"]), 403, "not_subscribed")
    idle = await client.get("/idle/x", headers=world["owner"])
    assert_error(idle, 503, "api_not_running")
    assert idle.headers["retry-after"] == "5"
    timeout = await client.get("/echo/slow", headers=world["owner"])
    assert_error(timeout, 504, "upstream_timeout")

    statuses = sorted(e.status_code for e in await _events(world))
    assert statuses == [401, 401, 401, 403, 503, 504]  # unknown slugs belong to no API


async def test_dead_container_is_a_quick_502_and_route_changes_apply(world: dict[str, Any]) -> None:
    client: httpx.AsyncClient = world["client"]
    assert (await client.get("/echo/", headers=world["owner"])).status_code == 200
    async with world["sessions"]() as session:
        await session.execute(
            update(Deployment)
            .where(Deployment.id == "d-1")
            .values(endpoint=f"http://127.0.0.1:{free_port()}")
        )
        await session.commit()
    # Cached until invalidated: the executor publishes on the routes channel.
    await world["redis"].publish("veil:routes", "echo")
    for _ in range(50):
        response = await client.get("/echo/", headers=world["owner"])
        if response.status_code != 200:
            break
        await asyncio.sleep(0.02)
    assert_error(response, 502, "upstream_unreachable")


async def test_events_spool_while_redis_is_down(world: dict[str, Any]) -> None:
    plane: DataPlane = world["plane"]
    client: httpx.AsyncClient = world["client"]
    real = plane.events._connection
    dead = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    plane.events._connection = KeptConnection(dead)
    try:
        assert (await client.get("/echo/a", headers=world["owner"])).status_code == 200
        assert plane.events.spooled == 1
    finally:
        await dead.aclose()
        plane.events._connection = real
    for _ in range(40):  # the flusher retries every second
        if plane.events.spooled == 0:
            break
        await asyncio.sleep(0.1)
    events = await _events(world)
    assert [json.dumps(e.path) for e in events] == [json.dumps("/echo/a")]


async def test_per_api_timeout_applies(world: dict[str, Any]) -> None:
    async with world["sessions"]() as session:
        await session.execute(update(Api).where(Api.id == "api-1").values(timeout_seconds=0.3))
        await session.commit()
    await world["redis"].publish("veil:routes", "echo")
    for _ in range(50):
        response = await world["client"].get("/echo/slow", headers=world["owner"])
        if "0.3 s" in response.text:
            break
        await asyncio.sleep(0.02)
    error = assert_error(response, 504, "upstream_timeout")
    assert "0.3 s" in error["message"]


async def test_max_concurrency_refuses_the_excess_with_429(world: dict[str, Any]) -> None:
    async with world["sessions"]() as session:
        await session.execute(update(Api).where(Api.id == "api-1").values(max_concurrency=2))
        await session.commit()
    world["plane"].routes.invalidate()
    client, owner = world["client"], world["owner"]
    answers = await asyncio.gather(*(client.get("/echo/hold", headers=owner) for _ in range(5)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 429, 429, 429], statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert_error(refused, 429, "concurrency_limit")
    assert refused.headers["retry-after"] == "1"
    # Finished calls free their slots; a failing upstream frees its slot too.
    assert (await client.get("/echo/hold", headers=owner)).status_code == 200
    assert world["plane"]._in_flight == {}


async def test_max_concurrency_is_shared_out_between_workers(
    world: dict[str, Any], make_settings: Any
) -> None:
    async with world["sessions"]() as session:
        await session.execute(update(Api).where(Api.id == "api-1").values(max_concurrency=3))
        await session.commit()
    settings = world["settings"].model_copy(update={"dataplane_workers": 2})
    plane = DataPlane(settings)
    await plane.startup()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=plane), base_url="http://dp")
    try:
        calls = (client.get("/echo/hold", headers=world["owner"]) for _ in range(4))
        statuses = sorted(a.status_code for a in await asyncio.gather(*calls))
        assert statuses == [200, 200, 429, 429], statuses  # ceil(3 / 2) = 2 on this worker
    finally:
        await client.aclose()
        await plane.shutdown()


async def test_answers_past_the_size_cap_are_refused_or_cut(world: dict[str, Any]) -> None:
    settings: DataPlaneSettings = world["settings"].model_copy(update={"max_response_mb": 2})
    plane = DataPlane(settings)
    await plane.startup()
    transport = httpx.ASGITransport(app=plane)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dp") as client:
            sized = await client.get("/echo/big", headers=world["owner"])
            error = assert_error(sized, 502, "response_too_large")
            assert "2 MB" in error["message"]
            # Chunked: the status went out first, so the answer is never finished (a
            # server then closes the connection; httpx's in-process transport says so
            # with an AssertionError).
            with pytest.raises((httpx.HTTPError, AssertionError)):
                await client.get("/echo/big-streamed", headers=world["owner"])
            assert (await client.get("/echo/small", headers=world["owner"])).status_code == 200
        await plane.events.flush()
    finally:
        await plane.shutdown()
    stream: str = settings.events_stream
    redis: Redis = world["redis"]
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(stream)  # type: ignore[assignment]
    events = [ExecutionEvent.from_fields(fields) for _, fields in entries]
    statuses = {e.path: e.status_code for e in events}
    assert statuses == {"/echo/big": 502, "/echo/big-streamed": 502, "/echo/small": 200}
