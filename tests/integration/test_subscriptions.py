"""Subscriptions and keys: tenant isolation, authentication, and key-change events."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from shared.auth.api_keys import hash_key
from shared.invalidation import KEYS_CHANNEL
from tests.integration.conftest import assert_error, published_so_far, signup
from tests.integration.marketplace_support import FREE, next_message, public_api, subscribe


async def test_other_consumers_get_404_for_every_subscription_and_key_call(
    gateway: httpx.AsyncClient,
) -> None:
    dev = await signup(gateway)
    alice = await signup(gateway, role="consumer")
    bob = await signup(gateway, role="consumer")
    api, _ = await public_api(gateway, dev)
    subscribed = await subscribe(gateway, alice, api["id"])
    sub_url = f"/api/v1/subscriptions/{subscribed['subscription']['id']}"
    key_url = f"/api/v1/keys/{subscribed['key']['id']}"

    assert (await gateway.get("/api/v1/subscriptions", headers=bob)).json()["items"] == []
    for method, url in (
        ("GET", sub_url),
        ("DELETE", sub_url),
        ("GET", f"{sub_url}/keys"),
        ("POST", f"{sub_url}/keys"),
    ):
        assert_error(await gateway.request(method, url, headers=bob), 404, "subscription_not_found")
    assert_error(await gateway.post(f"{key_url}/rotate", headers=bob), 404, "key_not_found")
    assert_error(await gateway.delete(key_url, headers=bob), 404, "key_not_found")
    assert_error(await gateway.delete("/api/v1/keys/nope", headers=alice), 404, "key_not_found")
    # Only the owner sees an API's subscribers.
    subscribers = f"/api/v1/apis/{api['id']}/subscribers"
    assert_error(await gateway.get(subscribers, headers=alice), 403, "developer_only")
    other_dev = await signup(gateway)
    assert_error(await gateway.get(subscribers, headers=other_dev), 404, "api_not_found")

    # Nothing of Alice's changed.
    alices = await gateway.get(f"{sub_url}/keys", headers=alice)
    assert len(alices.json()["items"]) == 1
    assert alices.json()["items"][0]["revoked_at"] is None
    assert (await gateway.get(sub_url, headers=alice)).json()["status"] == "active"


async def test_consumer_endpoints_need_a_token(gateway: httpx.AsyncClient) -> None:
    dev = await signup(gateway)
    api, _ = await public_api(gateway, dev)
    for method, url in (
        ("GET", "/api/v1/subscriptions"),
        ("GET", "/api/v1/subscriptions/x"),
        ("DELETE", "/api/v1/subscriptions/x"),
        ("GET", "/api/v1/subscriptions/x/keys"),
        ("POST", "/api/v1/subscriptions/x/keys"),
        ("POST", "/api/v1/keys/x/rotate"),
        ("DELETE", "/api/v1/keys/x"),
        ("POST", f"/api/v1/marketplace/apis/{api['id']}/subscribe"),
        ("GET", f"/api/v1/apis/{api['id']}/subscribers"),
    ):
        response = await gateway.request(method, url)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_revoke_rotate_cancel_and_limit_changes_are_published(
    gateway: httpx.AsyncClient, redis: Redis
) -> None:
    dev = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    api, (plan,) = await public_api(gateway, dev, plans=(FREE,))
    subscribed = await subscribe(gateway, consumer, api["id"])
    sub_url = f"/api/v1/subscriptions/{subscribed['subscription']['id']}"
    extra = (await gateway.post(f"{sub_url}/keys", headers=consumer)).json()
    spare = (await gateway.post(f"{sub_url}/keys", headers=consumer)).json()

    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(KEYS_CHANNEL)
        assert await published_so_far(pubsub) == []  # subscribing publishes nothing

        revoked = await gateway.delete(f"/api/v1/keys/{subscribed['key']['id']}", headers=consumer)
        assert revoked.status_code == 204
        assert await next_message(pubsub) == hash_key(subscribed["api_key"])

        rotated = await gateway.post(f"/api/v1/keys/{extra['key']['id']}/rotate", headers=consumer)
        assert rotated.status_code == 201
        assert await next_message(pubsub) == hash_key(extra["api_key"])

        plan_url = f"/api/v1/apis/{api['id']}/plans/{plan['id']}"
        renamed = await gateway.patch(plan_url, json={"name": "Hobby"}, headers=dev)
        assert renamed.status_code == 200
        assert await published_so_far(pubsub) == []  # no limit changed
        same = await gateway.patch(plan_url, json={"burst": 10}, headers=dev)
        assert same.status_code == 200
        assert await published_so_far(pubsub) == []  # same value as before
        limited = await gateway.patch(plan_url, json={"daily_quota": 50}, headers=dev)
        assert limited.status_code == 200
        assert await next_message(pubsub) == "*"

        assert (await gateway.delete(sub_url, headers=consumer)).status_code == 204
        published = {await next_message(pubsub), await next_message(pubsub)}
        assert published == {hash_key(spare["api_key"]), hash_key(rotated.json()["api_key"])}
        assert await published_so_far(pubsub) == []  # revoked keys are not repeated
        await pubsub.unsubscribe(KEYS_CHANNEL)
