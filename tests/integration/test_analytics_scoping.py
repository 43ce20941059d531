"""Stats and history through the control plane: owners see their API, subscribers their calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from analytics.app import create_app as create_analytics
from shared.settings import AnalyticsSettings
from tests.conftest import asgi_client
from tests.integration.analytics_support import app_sessions, event, feed, wait_stored
from tests.integration.conftest import assert_error, signup
from tests.integration.marketplace_support import public_api, subscribe


@pytest.fixture
async def analytics(make_settings: Any, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    settings: AnalyticsSettings = make_settings(AnalyticsSettings)
    async for client in asgi_client(create_analytics(settings)):
        yield client


@pytest.fixture
def wired(gateway: httpx.AsyncClient, analytics: httpx.AsyncClient) -> httpx.AsyncClient:
    """The gateway, calling this in-process analytics for its internal requests."""
    transport = gateway._transport
    assert isinstance(transport, httpx.ASGITransport)
    transport.app.state.veil.services = analytics  # type: ignore[attr-defined]
    return gateway


async def test_owners_and_subscribers_see_only_their_own(
    wired: httpx.AsyncClient, analytics: httpx.AsyncClient, redis: Redis, make_settings: Any
) -> None:
    gateway = wired
    owner = await signup(gateway)
    alice = await signup(gateway, role="consumer")
    bob = await signup(gateway, role="consumer")
    intruder = await signup(gateway)
    api, _ = await public_api(gateway, owner)
    other_api, _ = await public_api(gateway, intruder, name="Other API")
    alices = (await subscribe(gateway, alice, api["id"]))["subscription"]["id"]
    bobs = (await subscribe(gateway, bob, api["id"]))["subscription"]["id"]

    now = datetime.now(UTC) - timedelta(minutes=1)
    events = [
        event(api["id"], status, 3.0, now, subscription_id=alices, key_id="ka")
        for status in (200, 500)
    ]
    events += [event(api["id"], 200, 2.0, now, subscription_id=bobs, key_id="kb") for _ in range(3)]
    events += [event(api["id"], 200, 1.0, now) for _ in range(2)]  # the owner's own calls
    events += [event(other_api["id"], 200, 1.0, now) for _ in range(4)]
    await feed(redis, make_settings(AnalyticsSettings).events_stream, events)
    assert await wait_stored(app_sessions(analytics), len(events)) == len(events)

    # The owner: everything of their API, and who called it.
    stats = (await gateway.get(f"/api/v1/apis/{api['id']}/stats", headers=owner)).json()
    assert (stats["calls"], stats["errors"]) == (7, 1)
    assert stats["latency_ms"]["p50"] is not None
    top = {c["subscription_id"]: (c["calls"], c["consumer"]) for c in stats["top_consumers"]}
    assert (top[bobs][0], top[alices][0], top[None]) == (3, 2, (2, None))
    assert None not in (top[bobs][1], top[alices][1])  # the consumers' display names
    assert top[bobs][1] != top[alices][1]
    page = (await gateway.get(f"/api/v1/apis/{api['id']}/executions", headers=owner)).json()
    assert len(page["items"]) == 7
    only_5xx = await gateway.get(
        f"/api/v1/apis/{api['id']}/executions", params={"status": "5xx"}, headers=owner
    )
    assert [e["status_code"] for e in only_5xx.json()["items"]] == [500]

    # A subscriber: only their own subscription's calls.
    alice_page = (
        await gateway.get(f"/api/v1/subscriptions/{alices}/executions", headers=alice)
    ).json()
    assert {e["subscription_id"] for e in alice_page["items"]} == {alices}
    assert len(alice_page["items"]) == 2
    alice_stats = (await gateway.get(f"/api/v1/subscriptions/{alices}/stats", headers=alice)).json()
    assert (alice_stats["calls"], alice_stats["errors"]) == (2, 1)
    assert alice_stats["top_consumers"] == []

    # Nobody sees another user's stats or calls.
    for url in (
        f"/api/v1/subscriptions/{alices}/executions",
        f"/api/v1/subscriptions/{alices}/stats",
    ):
        assert_error(await gateway.get(url, headers=bob), 404, "subscription_not_found")
        assert_error(await gateway.get(url, headers=owner), 404, "subscription_not_found")
        assert_error(await gateway.get(url), 401)
    for url in (f"/api/v1/apis/{api['id']}/stats", f"/api/v1/apis/{api['id']}/executions"):
        assert_error(await gateway.get(url, headers=intruder), 404, "api_not_found")
        assert_error(await gateway.get(url, headers=alice), 403, "developer_only")
        assert_error(await gateway.get(url), 401)
    # Asking analytics for another API through one's own subscription is not possible either.
    sneaky = await gateway.get(
        f"/api/v1/subscriptions/{bobs}/executions",
        params={"subscription_id": alices},
        headers=bob,
    )
    assert {e["subscription_id"] for e in sneaky.json()["items"]} == {bobs}
    # Errors from analytics come through in the one error shape.
    assert_error(
        await gateway.get(
            f"/api/v1/apis/{api['id']}/executions", params={"status": "9xx"}, headers=owner
        ),
        422,
        "invalid_status_filter",
    )
