"""The data plane with consumers' API keys: auth answers, limits, revocation, across workers.

Two DataPlane instances stand for two worker processes: each has its own route
and key caches and its own Redis connections, and they share Redis and the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import event, update

from gateway.dataplane.app import DataPlane
from shared.auth.api_keys import generate
from shared.db import create_engine, create_sessionmaker
from shared.events import ExecutionEvent
from shared.invalidation import KEYS_CHANNEL
from shared.models import Api, ApiKey, Deployment, Plan, Subscription, User
from shared.settings import DataPlaneSettings
from tests.integration.conftest import assert_error
from tests.integration.dataplane_support import version_row
from tests.integration.test_limits import bucket_time_us
from tests.services import free_port


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"headers": {k.lower(): v for k, v in request.headers.items()}})


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _plane(settings: DataPlaneSettings) -> tuple[DataPlane, httpx.AsyncClient]:
    plane = DataPlane(settings)
    await plane.startup()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=plane), base_url="http://dp")
    return plane, client


@pytest.fixture
async def market(make_settings: Any, upstream: str, redis: Redis) -> AsyncIterator[dict[str, Any]]:
    """One running API with two plans; a consumer subscribed with a key on each."""
    settings: DataPlaneSettings = make_settings(
        DataPlaneSettings, dataplane_workers=2, max_request_body_bytes=1024
    )
    engine = create_engine(settings.resolved_database_url)
    sessions = create_sessionmaker(engine)
    fast, tiny, other_key = generate(), generate(), generate()
    async with sessions() as session:
        owner = User(id="u-owner", email="o@example.com", password_hash="x", role="developer")
        consumer = User(id="u-cons", email="c@example.com", password_hash="x", role="consumer")
        api = Api(id="api-1", owner_id=owner.id, name="Echo", slug="echo")
        other = Api(id="api-2", owner_id=owner.id, name="Other", slug="other")
        rate = Plan(id="p-rate", api_id=api.id, name="Rate", rate_per_second=20, burst=20)
        quota = Plan(id="p-quota", api_id=api.id, name="Quota", daily_quota=3)
        free = Plan(id="p-free", api_id=other.id, name="Free")
        subs = [
            Subscription(id="s-rate", api_id=api.id, plan_id=rate.id, consumer_id=consumer.id),
            Subscription(id="s-quota", api_id=api.id, plan_id=quota.id, consumer_id=owner.id),
            Subscription(id="s-other", api_id=other.id, plan_id=free.id, consumer_id=consumer.id),
        ]
        keys = [
            ApiKey(
                id=f"k-{sub.id}",
                subscription_id=sub.id,
                consumer_id=sub.consumer_id,
                api_id=sub.api_id,
                key_hash=issued.key_hash,
                prefix=issued.prefix,
            )
            for sub, issued in zip(subs, (fast, tiny, other_key), strict=True)
        ]
        deployment = Deployment(
            id="d-1",
            api_id=api.id,
            version_id="v-api-1",
            status="running",
            endpoint=upstream,
            requested_by=owner.id,
        )
        for rows in (
            [owner, consumer],
            [api, other],
            [version_row(api.id, owner.id, f"v-{api.id}", number=3)],
            [rate, quota, free],
            subs,
            keys,
            [deployment],
        ):
            session.add_all(rows)
            await session.flush()
        api.active_deployment_id = deployment.id
        await session.commit()
    one, client_one = await _plane(settings)
    two, client_two = await _plane(settings)
    yield {
        "clients": (client_one, client_two),
        "planes": (one, two),
        "keys": {"rate": fast, "quota": tiny, "other": other_key},
        "sessions": sessions,
        "redis": redis,
        "settings": settings,
    }
    for client, plane in ((client_one, one), (client_two, two)):
        await client.aclose()
        await plane.shutdown()
    await engine.dispose()


def _key(market: dict[str, Any], name: str) -> dict[str, str]:
    return {"X-API-Key": market["keys"][name].plaintext}


async def test_key_calls_are_forwarded_metered_and_stripped(market: dict[str, Any]) -> None:
    client = market["clients"][0]
    headers = {**_key(market, "rate"), "Authorization": "Bearer app-own-token"}
    response = await client.get("/echo/x", headers=headers)
    assert response.status_code == 200, response.text
    seen = response.json()["headers"]
    assert "x-api-key" not in seen
    # With key auth, Authorization was not Veil's: the app's own scheme gets it.
    assert seen["authorization"] == "Bearer app-own-token"
    assert "x-veil-gateway-secret" in seen
    assert response.headers["ratelimit-policy"].startswith('"burst";q=20;w=1')
    assert response.headers["ratelimit"].startswith('"burst";r=19')

    await market["planes"][0].events.flush()  # its writer sends in batches
    entries = await market["redis"].xrange(market["settings"].events_stream)
    event = ExecutionEvent.from_fields(entries[-1][1])
    assert (event.key_id, event.subscription_id, event.caller_id) == (
        "k-s-rate",
        "s-rate",
        "u-cons",
    )
    assert event.version == 3


async def test_wrong_api_is_403_and_limits_ride_on_errors(market: dict[str, Any]) -> None:
    client = market["clients"][0]
    assert_error(await client.get("/echo/x", headers=_key(market, "other")), 403, "not_subscribed")
    # A refused quota: 429 naming the quota, Retry-After to UTC midnight, RateLimit fields.
    for _ in range(3):
        assert (await client.get("/echo/x", headers=_key(market, "quota"))).status_code == 200
    refused = await client.get("/echo/x", headers=_key(market, "quota"))
    error = assert_error(refused, 429, "daily_quota_exceeded")
    assert error["details"]["quota"] == "daily"
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    assert '"daily";q=3' in refused.headers["ratelimit-policy"]
    # The quota is shared by both workers: the other one refuses too.
    other = await market["clients"][1].get("/echo/x", headers=_key(market, "quota"))
    assert_error(other, 429, "daily_quota_exceeded")


async def test_rate_limit_is_exact_across_two_workers(market: dict[str, Any]) -> None:
    """Counted in Redis' own time, as in test_limits: each admitted call moves the one
    bucket by exactly one interval, and the load runs until a number of calls is
    admitted, not for a wall-clock time that a busy machine would spend stalled."""
    clients, headers, redis = market["clients"], _key(market, "rate"), market["redis"]
    interval_us = 1_000_000 / 20  # the plan's rate
    assert (await clients[0].get("/echo/x", headers=headers)).status_code == 200
    first_us = await bucket_time_us(redis, "s-rate") - interval_us  # Redis' now then
    admitted, refused = 1, 0
    give_up = time.monotonic() + 30

    async def hammer(client: httpx.AsyncClient) -> None:
        nonlocal admitted, refused
        while admitted < 50 and time.monotonic() < give_up:
            response = await client.get("/echo/x", headers=headers)
            if response.status_code == 200:
                admitted += 1
            else:
                assert response.status_code == 429, response.text
                assert response.json()["error"]["code"] == "rate_limited"
                assert int(response.headers["retry-after"]) >= 1
                refused += 1

    await asyncio.gather(*(hammer(c) for c in clients for _ in range(4)))
    moved_us = await bucket_time_us(redis, "s-rate") - first_us
    now_s, now_us = await redis.time()
    assert admitted >= 50
    assert refused > 0
    assert admitted == round(moved_us / interval_us), (admitted, moved_us, refused)
    # No faster than the rate: the bucket is at most its burst ahead of Redis' clock.
    assert first_us + moved_us - (now_s * 1_000_000 + now_us) <= 20 * interval_us


async def test_revoked_key_stops_on_every_worker_within_a_second(market: dict[str, Any]) -> None:
    headers = _key(market, "rate")
    for client in market["clients"]:  # both workers have the key cached now
        assert (await client.get("/echo/x", headers=headers)).status_code == 200
    async with market["sessions"]() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == "k-s-rate").values(revoked_at=ApiKey.created_at)
        )
        await session.commit()
    await market["redis"].publish(KEYS_CHANNEL, market["keys"]["rate"].key_hash)
    started = time.monotonic()
    for client in market["clients"]:
        while (await client.get("/echo/x", headers=headers)).status_code != 401:
            assert time.monotonic() - started < 1.0, "a worker still admits a revoked key"
            await asyncio.sleep(0.01)


async def test_oversized_bodies_are_refused_with_413(market: dict[str, Any]) -> None:
    client, headers = market["clients"][0], _key(market, "rate")
    declared = await client.post("/echo/x", headers=headers, content=b"x" * 2048)
    assert_error(declared, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 512

    streamed = await client.post("/echo/x", headers=headers, content=chunks())
    assert_error(streamed, 413)
    assert (await client.post("/echo/x", headers=headers, content=b"ok")).status_code == 200


@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_down_follows_the_setting(
    market: dict[str, Any], make_settings: Any, fail_open: bool
) -> None:
    port = free_port()  # nothing listens here: Redis is "down" for this worker
    settings = market["settings"].model_copy(
        update={"redis_url": f"redis://127.0.0.1:{port}/0", "rate_limit_fail_open": fail_open}
    )
    plane, client = await _plane(settings)
    try:
        response = await client.get("/echo/x", headers=_key(market, "rate"))
        if fail_open:
            assert response.status_code == 200, response.text
        else:
            assert_error(response, 503, "limits_unavailable")
        assert plane.events.spooled == 1  # the event waits for Redis, nothing lost
    finally:
        await client.aclose()
        await plane.shutdown()


async def test_a_key_guesser_is_refused_before_the_database(market: dict[str, Any]) -> None:
    settings: DataPlaneSettings = market["settings"].model_copy(
        update={"failed_keys_per_minute": 10, "client_address_header": "x-forwarded-for"}
    )
    plane, client = await _plane(settings)
    queries: list[str] = []
    event.listen(plane.engine.sync_engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    try:
        legit = _key(market, "rate")
        assert (await client.get("/echo/x", headers=legit)).status_code == 200  # now cached
        guesser = {"X-Forwarded-For": "198.51.100.7"}
        codes = []
        for _ in range(30):
            made_up = {**guesser, "X-API-Key": generate().plaintext}  # well-formed, unknown
            codes.append((await client.get("/echo/x", headers=made_up)).status_code)
        assert codes == [401] * 10 + [429] * 20
        refused = await client.get(
            "/echo/x", headers={**guesser, "X-API-Key": generate().plaintext}
        )
        assert_error(refused, 429, "too_many_failed_keys")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        key_lookups = [q for q in queries if "FROM api_keys" in q]
        assert len(key_lookups) == 1 + 10  # the legit key's load, then one per failure
        # A key already cached keeps working from that address; other addresses are free.
        assert (await client.get("/echo/x", headers={**legit, **guesser})).status_code == 200
        elsewhere = {"X-Forwarded-For": "198.51.100.8", "X-API-Key": generate().plaintext}
        assert_error(await client.get("/echo/x", headers=elsewhere), 401, "invalid_api_key")
    finally:
        await client.aclose()
        await plane.shutdown()
