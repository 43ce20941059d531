"""Create paths hit by parallel identical requests: one wins, the others get a clear answer.

Never a 500, never two rows where one is allowed, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from redis.asyncio import Redis

from tests.integration.conftest import SAMPLE_APP, create_api, signup, upload, zip_bytes
from tests.integration.marketplace_support import FREE, public_api, subscribe

PARALLEL = 8


async def test_parallel_deploys_with_one_idempotency_key_make_one_deployment(
    gateway: httpx.AsyncClient, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    assert (
        await upload(gateway, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP}))
    ).status_code == 201
    headers = {**alice, "Idempotency-Key": "same-retry"}
    answers = await asyncio.gather(
        *(
            gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=headers)
            for _ in range(PARALLEL)
        )
    )
    assert [a.status_code for a in answers] == [202] * PARALLEL, [a.text for a in answers]
    assert len({a.json()["deployment_id"] for a in answers}) == 1
    assert sorted(a.json()["replayed"] for a in answers) == [False] + [True] * (PARALLEL - 1)
    history = (await gateway.get(f"/api/v1/apis/{api['id']}/deployments", headers=alice)).json()
    assert len(history["items"] if isinstance(history, dict) else history) == 1


async def test_parallel_apis_with_one_slug_make_one_api(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    body = {"name": "Race", "slug": "race-slug"}
    answers = await asyncio.gather(
        *(gateway.post("/api/v1/apis", json=body, headers=alice) for _ in range(PARALLEL))
    )
    codes = Counter(a.status_code for a in answers)
    assert codes == {201: 1, 409: PARALLEL - 1}, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"slug_taken"}


async def test_parallel_subscribes_make_one_subscription(
    gateway: httpx.AsyncClient, redis: Redis
) -> None:
    owner = await signup(gateway)
    api, _ = await public_api(gateway, owner, plans=(FREE,))
    consumer = await signup(gateway, role="consumer")
    url = f"/api/v1/marketplace/apis/{api['id']}/subscribe"
    answers = await asyncio.gather(
        *(gateway.post(url, json={}, headers=consumer) for _ in range(PARALLEL))
    )
    codes = Counter(a.status_code for a in answers)
    assert codes == {201: 1, 409: PARALLEL - 1}, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "already_subscribed"
    }


async def test_parallel_new_keys_stop_at_the_maximum(
    gateway: httpx.AsyncClient, redis: Redis
) -> None:
    owner = await signup(gateway)
    api, _ = await public_api(gateway, owner, plans=(FREE,))
    consumer = await signup(gateway, role="consumer")
    subscription = (await subscribe(gateway, consumer, api["id"]))["subscription"]
    url = f"/api/v1/subscriptions/{subscription['id']}/keys"
    answers = await asyncio.gather(
        *(gateway.post(url, json={"name": f"k{i}"}, headers=consumer) for i in range(12))
    )
    codes = Counter(a.status_code for a in answers)
    assert codes == {201: 9, 409: 3}, [a.text for a in answers]  # 1 from subscribing + 9 = 10
    keys = (await gateway.get(url, headers=consumer)).json()
    assert (
        len(
            [
                k
                for k in (keys["items"] if isinstance(keys, dict) else keys)
                if not k.get("revoked_at")
            ]
        )
        == 10
    )


async def test_parallel_plans_with_one_name(gateway: httpx.AsyncClient, redis: Redis) -> None:
    owner = await signup(gateway)
    api = await create_api(gateway, owner)
    url = f"/api/v1/apis/{api['id']}/plans"
    answers = await asyncio.gather(
        *(gateway.post(url, json=FREE, headers=owner) for _ in range(PARALLEL))
    )
    assert all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
