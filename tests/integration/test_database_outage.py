"""A slow or unreachable PostgreSQL: every wait is bounded, callers get a quick 503
`database_unavailable` with Retry-After, readiness says so, cached calls keep
working on the data plane, and everything is well again once the database is.

The database sits behind a FaultyProxy (tests/services.py) that adds latency or
swallows every byte, in front of a throw-away PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from redis.asyncio import Redis

from analytics.app import create_app as create_analytics
from gateway.app import create_app
from shared.auth.tokens import issue_access_token
from shared.db import create_engine, create_sessionmaker
from shared.models import Api, User
from shared.settings import AnalyticsSettings, DataPlaneSettings, GatewaySettings
from tests.conftest import asgi_client
from tests.integration.admin_support import data_plane
from tests.integration.analytics_support import event, feed, stored, wait_stored
from tests.integration.conftest import assert_error, signup
from tests.integration.dataplane_support import add_in_order, running_deployment, version_row
from tests.integration.test_dataplane import upstream
from tests.services import FaultyProxy

__all__ = ["upstream"]
pytestmark = pytest.mark.postgres
FAST = {
    "db_connect_timeout_seconds": 1.0,
    "db_statement_timeout_seconds": 1.0,
    "db_pool_timeout_seconds": 1.0,
}


@pytest.fixture
def real_database(postgres_database_url: str) -> str:
    return postgres_database_url


@pytest.fixture
def database_url(real_database: str) -> str:
    """PostgreSQL only (the outage is a network's); the services reach it through the proxy."""
    return real_database


@pytest.fixture
def proxy(real_database: str) -> Iterator[FaultyProxy]:
    port = urlsplit(real_database).port
    assert port is not None
    with FaultyProxy(port) as faulty:
        yield faulty


def through(real_database: str, proxy: FaultyProxy) -> str:
    parts = urlsplit(real_database)
    return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl()


@pytest.fixture
async def control_plane(
    make_settings: Any, real_database: str, proxy: FaultyProxy, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    settings: GatewaySettings = make_settings(
        GatewaySettings, database_url=through(real_database, proxy), **FAST
    )
    async for client in asgi_client(create_app(settings)):
        yield client


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


async def test_a_database_that_stops_answering_is_a_quick_503_then_heals(
    control_plane: httpx.AsyncClient, proxy: FaultyProxy
) -> None:
    alice = await signup(control_plane)
    assert (await control_plane.get("/readyz")).status_code == 200
    proxy.blackhole = True
    calls = [control_plane.get("/api/v1/apis", headers=alice) for _ in range(25)]
    started = time.monotonic()
    answers = await asyncio.gather(*calls)
    elapsed = time.monotonic() - started
    for answer in answers:
        assert_error(answer, 503, "database_unavailable")
        assert answer.headers["retry-after"] == "5"
    assert elapsed < 10, elapsed  # bounded: never the client's own 30 s
    ready, took = await timed(control_plane.get("/readyz"))
    assert ready.status_code == 503, ready.text
    assert ready.json()["database"] is False
    assert took < 5, took
    proxy.blackhole = False
    # The pool heals: the connections stuck in the outage are not handed out again.
    for _ in range(5):
        assert (await control_plane.get("/api/v1/apis", headers=alice)).status_code == 200
    assert (await control_plane.get("/readyz")).status_code == 200


async def test_a_slow_database_is_bounded_too(
    control_plane: httpx.AsyncClient, proxy: FaultyProxy
) -> None:
    alice = await signup(control_plane)
    proxy.delay = 3.0  # beyond the 1 s statement limit
    answer, took = await timed(control_plane.get("/api/v1/apis", headers=alice))
    assert_error(answer, 503, "database_unavailable")
    assert took < 8, took
    proxy.delay = 0.0
    assert (await control_plane.get("/api/v1/apis", headers=alice)).status_code == 200


async def test_the_data_plane_serves_what_it_knows_and_refuses_the_rest_quickly(
    make_settings: Any, real_database: str, proxy: FaultyProxy, upstream: str, redis: Redis
) -> None:
    engine = create_engine(real_database)
    async with create_sessionmaker(engine)() as session:
        owner = User(id="u-owner", email="o@example.com", password_hash="x", role="developer")
        api = Api(id="api-1", owner_id=owner.id, name="Echo", slug="echo")
        version = version_row(api.id, owner.id, "v-1")
        deployment = running_deployment("d-1", version, upstream, owner.id)
        await add_in_order(session, [owner], [api], [version], [deployment])
        api.active_deployment_id = deployment.id
        await session.commit()
    await engine.dispose()
    settings: DataPlaneSettings = make_settings(
        DataPlaneSettings,
        database_url=through(real_database, proxy),
        route_cache_ttl_seconds=0.2,  # the outage outlives every cached entry
        **FAST,
    )
    token = issue_access_token("u-owner", "developer", settings.jwt_secret.get_secret_value(), 60)
    owner_auth = {"Authorization": f"Bearer {token}"}
    # Once the plane follows invalidations (it drops its caches when it starts to),
    # what it learns stays cached.
    async with data_plane(settings, redis) as client:
        assert (await client.get("/echo/x", headers=owner_auth)).status_code == 200
        proxy.blackhole = True
        await asyncio.sleep(0.3)  # past the TTL: each call now refreshes in the outage
        for _ in range(3):
            known, took = await timed(client.get("/echo/x", headers=owner_auth))
            assert known.status_code == 200, known.text  # answered from what it knew
        unknown, took = await timed(client.get("/nobody-knows/x", headers=owner_auth))
        assert_error(unknown, 503, "database_unavailable")
        assert took < 5, took
        assert (await client.get("/readyz")).status_code == 503
        proxy.blackhole = False
        assert_error(await client.get("/nobody-knows/x", headers=owner_auth), 404)
        assert (await client.get("/readyz")).status_code == 200


async def test_analytics_stores_every_event_once_across_an_outage(
    make_settings: Any, real_database: str, proxy: FaultyProxy, redis: Redis
) -> None:
    settings: AnalyticsSettings = make_settings(
        AnalyticsSettings, database_url=through(real_database, proxy), **FAST
    )
    now = datetime.now(UTC)
    engine = create_engine(real_database)
    direct = create_sessionmaker(engine)
    async for _client in asgi_client(create_analytics(settings)):
        before = [event("api-1", 200, 1.0, now - timedelta(seconds=i)) for i in range(50)]
        await feed(redis, settings.events_stream, before)
        assert await wait_stored(direct, 50) == 50
        proxy.blackhole = True
        outage = [event("api-1", 200, 1.0, now - timedelta(seconds=i)) for i in range(200)]
        await feed(redis, settings.events_stream, outage)
        await asyncio.sleep(3)  # several stores fail (bounded), nothing is acknowledged
        assert await stored(direct) == 50
        proxy.blackhole = False
        assert await wait_stored(direct, 250) == 250
        await asyncio.sleep(1)  # a redelivery would show up here
        assert await stored(direct) == 250
    await engine.dispose()
