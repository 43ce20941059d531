from __future__ import annotations

import httpx
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue

from shared.settings import GatewaySettings
from tests.integration.conftest import (
    SAMPLE_APP,
    assert_error,
    create_api,
    signup,
    upload,
    zip_bytes,
)


async def test_api_crud_is_owner_scoped(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    bob = await signup(gateway)
    api = await create_api(gateway, alice, name="Weather Now!")
    assert api["slug"] == "weather-now"
    assert api["visibility"] == "private"
    assert api["url"].endswith("/weather-now/")

    listed = await gateway.get("/api/v1/apis", headers=alice)
    assert [a["id"] for a in listed.json()["items"]] == [api["id"]]
    assert (await gateway.get("/api/v1/apis", headers=bob)).json()["items"] == []

    # Bob sees Alice's API exactly as a missing one, for every verb.
    for method in ("GET", "PATCH", "DELETE"):
        response = await gateway.request(
            method,
            f"/api/v1/apis/{api['id']}",
            headers=bob,
            json={"name": "x"} if method == "PATCH" else None,
        )
        assert_error(response, 404, "api_not_found")
    assert_error(await gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=bob), 404)
    assert_error(await gateway.get(f"/api/v1/apis/{api['id']}/status", headers=bob), 404)

    patched = await gateway.patch(
        f"/api/v1/apis/{api['id']}",
        json={"description": "Forecasts", "visibility": "public"},
        headers=alice,
    )
    assert patched.status_code == 200
    assert patched.json()["visibility"] == "public"
    assert patched.json()["slug"] == "weather-now"


async def test_second_api_with_same_name_gets_a_new_slug(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    first = await create_api(gateway, alice, name="Echo")
    second = await create_api(gateway, alice, name="Echo")
    assert first["slug"] == "echo"
    assert second["slug"].startswith("echo-")
    taken = await gateway.post("/api/v1/apis", json={"name": "x", "slug": "echo"}, headers=alice)
    assert_error(taken, 409, "slug_taken")
    bad = await gateway.post("/api/v1/apis", json={"name": "x", "slug": "-Bad"}, headers=alice)
    assert_error(bad, 422, "invalid_slug")
    reserved = await gateway.post(
        "/api/v1/apis", json={"name": "x", "slug": "admin"}, headers=alice
    )
    assert_error(reserved, 422, "invalid_slug")


async def test_consumers_cannot_create_apis(gateway: httpx.AsyncClient) -> None:
    consumer = await signup(gateway, role="consumer")
    response = await gateway.post("/api/v1/apis", json={"name": "Nope"}, headers=consumer)
    assert_error(response, 403, "developer_only")


async def test_unknown_fields_and_missing_auth(gateway: httpx.AsyncClient) -> None:
    assert_error(await gateway.get("/api/v1/apis"), 401, "unauthorized")
    alice = await signup(gateway)
    extra = await gateway.post("/api/v1/apis", json={"name": "a", "owner_id": "x"}, headers=alice)
    assert_error(extra, 422, "validation_error")
    assert_error(await gateway.get("/api/v1/nothing-here"), 404, "not_found")


async def test_deploy_without_version_is_409(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    response = await gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=alice)
    assert_error(response, 409, "no_version")
    never = await gateway.post(f"/api/v1/apis/{api['id']}/start", headers=alice)
    assert_error(never, 409, "never_ran")
    status = await gateway.get(f"/api/v1/apis/{api['id']}/status", headers=alice)
    assert status.json()["status"] == "not_deployed"


async def test_deploy_records_and_enqueues(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    assert (
        await upload(gateway, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP}))
    ).status_code == 201
    missing = await gateway.post(
        f"/api/v1/apis/{api['id']}/deploy", json={"version": 7}, headers=alice
    )
    assert_error(missing, 404, "version_not_found")

    response = await gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=alice)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["version"] == 1

    queue = Queue(
        gateway_settings.build_queue, connection=SyncRedis.from_url(gateway_settings.redis_url)
    )
    jobs = queue.get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [
        ("executor.jobs.deploy", (body["deployment_id"],))
    ]
    queue.connection.close()

    status = await gateway.get(f"/api/v1/apis/{api['id']}/status", headers=alice)
    assert status.json()["status"] == "queued"
    assert status.json()["deployment_id"] == body["deployment_id"]


async def test_delete_removes_the_api_and_queues_container_teardown(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    await upload(gateway, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP}))
    response = await gateway.delete(f"/api/v1/apis/{api['id']}", headers=alice)
    assert response.status_code == 204
    assert_error(await gateway.get(f"/api/v1/apis/{api['id']}", headers=alice), 404)
    assert (await gateway.get("/api/v1/apis", headers=alice)).json()["items"] == []
    connection = SyncRedis.from_url(gateway_settings.redis_url)
    jobs = Queue(gateway_settings.build_queue, connection=connection).get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [("executor.jobs.teardown_api", (api["id"],))]
    connection.close()
    # The slug is free again.
    again = await gateway.post(
        "/api/v1/apis", json={"name": "x", "slug": api["slug"]}, headers=alice
    )
    assert again.status_code == 201


async def test_idempotent_deploy_and_rollback(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    for marker in (b"# v1", b"# v2"):
        archive = zip_bytes({"main.py": SAMPLE_APP + marker})
        assert (await upload(gateway, alice, api["id"], archive)).status_code == 201
    url = f"/api/v1/apis/{api['id']}/deploy"
    key = {**alice, "Idempotency-Key": "deploy-42"}
    first = await gateway.post(url, headers=key)
    again = await gateway.post(url, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["deployment_id"] == first.json()["deployment_id"]
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    other_version = await gateway.post(url, json={"version": 1}, headers=key)
    assert_error(other_version, 409, "idempotency_key_reused")

    rollback = await gateway.post(
        f"/api/v1/apis/{api['id']}/rollback", json={"version": 1}, headers=alice
    )
    assert rollback.status_code == 202
    assert rollback.json()["version"] == 1
    missing = await gateway.post(
        f"/api/v1/apis/{api['id']}/rollback", json={"version": 9}, headers=alice
    )
    assert_error(missing, 404, "version_not_found")

    connection = SyncRedis.from_url(gateway_settings.redis_url)
    jobs = Queue(gateway_settings.build_queue, connection=connection).get_jobs()
    connection.close()
    # One job per distinct request, none for the replay.
    assert [j.args for j in jobs] == [
        (first.json()["deployment_id"],),
        (rollback.json()["deployment_id"],),
    ]


async def test_runtime_settings_are_bounded_by_admin_maximums(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    alice = await signup(gateway)
    bob = await signup(gateway)
    api = await create_api(gateway, alice)
    url = f"/api/v1/apis/{api['id']}/settings"
    defaults = (await gateway.get(url, headers=alice)).json()
    assert defaults["memory_mb"] is None
    assert defaults["env"] == {}
    assert defaults["maximums"]["memory_mb"] == gateway_settings.max_memory_limit_mb

    wanted = {"memory_mb": 512, "cpus": 1.0, "timeout_seconds": 10, "env": {"GREETING": "hi"}}
    saved = await gateway.put(url, json=wanted, headers=alice)
    assert saved.status_code == 200, saved.text
    assert (await gateway.get(url, headers=alice)).json()["env"] == {"GREETING": "hi"}

    too_much = {**wanted, "memory_mb": gateway_settings.max_memory_limit_mb + 1}
    error = assert_error(await gateway.put(url, json=too_much, headers=alice), 422)
    assert error["code"] == "limit_exceeds_maximum"
    assert error["details"]["field"] == "memory_mb"
    busy = {**wanted, "max_concurrency": gateway_settings.max_concurrency_limit + 1}
    error = assert_error(await gateway.put(url, json=busy, headers=alice), 422)
    assert error["details"]["field"] == "max_concurrency"
    assert_error(await gateway.put(url, json={"max_concurrency": 0}, headers=alice), 422)
    for env in ({"PORT": "1"}, {"VEIL_JWT_SECRET": "x"}, {"bad name": "x"}):
        response = await gateway.put(url, json={"env": env}, headers=alice)
        assert_error(response, 422, "invalid_env")
    assert_error(await gateway.put(url, json={"memory_mb": 1}, headers=alice), 422)
    assert_error(await gateway.put(url, json=wanted, headers=bob), 404, "api_not_found")
    # Refused updates changed nothing.
    assert (await gateway.get(url, headers=alice)).json()["memory_mb"] == 512
