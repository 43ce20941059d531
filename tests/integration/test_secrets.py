"""Per-API secrets through the gateway: write-only, owner-only, encrypted at rest."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from shared.crypto import SecretBox
from shared.db import create_engine, create_sessionmaker
from shared.models import ApiSecret
from shared.settings import GatewaySettings
from tests.integration.conftest import assert_error, create_api, signup

VALUE = "pa55-w0rd-that-must-never-come-back"
OTHER_VALUE = "second-value-also-write-only"


async def _stored(settings: GatewaySettings, api_id: str) -> dict[str, str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(ApiSecret.name, ApiSecret.ciphertext).where(ApiSecret.api_id == api_id)
            )
            return {name: ciphertext for name, ciphertext in rows.all()}
    finally:
        await engine.dispose()


async def test_set_list_replace_delete_without_ever_showing_values(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    url = f"/api/v1/apis/{api['id']}/secrets"
    responses: list[httpx.Response] = []

    async def call(method: str, path: str = "", value: str | None = None) -> httpx.Response:
        body = None if value is None else {"value": value}
        response = await gateway.request(method, url + path, json=body, headers=alice)
        responses.append(response)
        return response

    empty = await call("GET")
    assert empty.status_code == 200
    assert empty.json() == {"items": []}

    created = await call("PUT", "/DB_PASSWORD", VALUE)
    assert created.status_code == 200, created.text
    assert set(created.json()) == {"name", "created_at", "updated_at"}
    assert created.json()["name"] == "DB_PASSWORD"
    assert (await call("PUT", "/API_TOKEN", "t0ken")).status_code == 200

    listed = await call("GET")
    assert [s["name"] for s in listed.json()["items"]] == ["API_TOKEN", "DB_PASSWORD"]
    assert all(set(s) == {"name", "created_at", "updated_at"} for s in listed.json()["items"])

    before = await _stored(gateway_settings, api["id"])
    replaced = await call("PUT", "/DB_PASSWORD", OTHER_VALUE)
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == created.json()["created_at"]
    assert replaced.json()["updated_at"] >= created.json()["updated_at"]
    after = await _stored(gateway_settings, api["id"])
    assert after["DB_PASSWORD"] != before["DB_PASSWORD"]
    assert after["API_TOKEN"] == before["API_TOKEN"]

    deleted = await call("DELETE", "/API_TOKEN")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await call("DELETE", "/API_TOKEN"), 404, "secret_not_found")
    assert [s["name"] for s in (await call("GET")).json()["items"]] == ["DB_PASSWORD"]

    # The settings endpoint does not show secrets among the plain variables either.
    responses.append(await gateway.get(f"/api/v1/apis/{api['id']}/settings", headers=alice))
    assert responses[-1].json()["env"] == {}
    for response in responses:
        assert VALUE not in response.text
        assert OTHER_VALUE not in response.text
        assert "t0ken" not in response.text


async def test_stored_rows_hold_only_ciphertext_bound_to_the_api_and_name(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    other = await create_api(gateway, alice, name="Other")
    put = await gateway.put(
        f"/api/v1/apis/{api['id']}/secrets/DB_PASSWORD", json={"value": VALUE}, headers=alice
    )
    assert put.status_code == 200

    stored = await _stored(gateway_settings, api["id"])
    ciphertext = stored["DB_PASSWORD"]
    assert VALUE not in ciphertext
    assert VALUE.encode().hex() not in ciphertext
    box = SecretBox(gateway_settings.secrets_key.get_secret_value())
    assert box.decrypt(api["id"], "DB_PASSWORD", ciphertext) == VALUE
    assert ciphertext.startswith(f"v1.{box.key_id}.")
    assert await _stored(gateway_settings, other["id"]) == {}


async def test_only_the_owner_reaches_secrets(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    bob = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    api = await create_api(gateway, alice)
    url = f"/api/v1/apis/{api['id']}/secrets"
    put = await gateway.put(f"{url}/KEY", json={"value": VALUE}, headers=alice)
    assert put.status_code == 200

    # Bob sees Alice's API exactly as a missing one, for every verb.
    assert_error(await gateway.get(url, headers=bob), 404, "api_not_found")
    assert_error(
        await gateway.put(f"{url}/KEY", json={"value": "x"}, headers=bob), 404, "api_not_found"
    )
    assert_error(await gateway.delete(f"{url}/KEY", headers=bob), 404, "api_not_found")
    assert_error(await gateway.get(url, headers=consumer), 403, "developer_only")
    assert_error(await gateway.get(url), 401, "unauthorized")
    assert_error(await gateway.put(f"{url}/KEY", json={"value": "x"}), 401, "unauthorized")
    assert_error(await gateway.delete(f"{url}/KEY"), 401, "unauthorized")
    missing = "/api/v1/apis/00000000-0000-4000-8000-000000000000/secrets"
    assert_error(await gateway.get(missing, headers=alice), 404, "api_not_found")
    # Nothing Bob tried changed Alice's secret.
    assert [s["name"] for s in (await gateway.get(url, headers=alice)).json()["items"]] == ["KEY"]


async def test_invalid_names_and_values_are_refused(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    url = f"/api/v1/apis/{api['id']}/secrets"
    long_name = "A" * 65
    for name in ("PORT", "path", "VEIL_SECRETS_KEY", "veil_x", "1ABC", "BAD-NAME", long_name):
        error = assert_error(
            await gateway.put(f"{url}/{name}", json={"value": VALUE}, headers=alice),
            422,
            "invalid_secret",
        )
        assert VALUE not in error["message"]
    for value in ("x" * 4097, "é" * 2049, "before\0after"):
        error = assert_error(
            await gateway.put(f"{url}/OK", json={"value": value}, headers=alice),
            422,
            "invalid_secret",
        )
        assert value not in error["message"]
        assert "before" not in error["message"]
    exactly = await gateway.put(f"{url}/OK", json={"value": "x" * 4096}, headers=alice)
    assert exactly.status_code == 200
    for body in ({}, {"value": 5}, {"value": "x", "extra": 1}):
        assert_error(await gateway.put(f"{url}/OK", json=body, headers=alice), 422)
    # Refused requests stored nothing.
    assert [s["name"] for s in (await gateway.get(url, headers=alice)).json()["items"]] == ["OK"]


async def test_at_most_64_secrets_per_api(gateway: httpx.AsyncClient) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    url = f"/api/v1/apis/{api['id']}/secrets"
    for n in range(64):
        response = await gateway.put(f"{url}/S{n}", json={"value": "v"}, headers=alice)
        assert response.status_code == 200, response.text
    error = assert_error(
        await gateway.put(f"{url}/ONE_TOO_MANY", json={"value": "v"}, headers=alice),
        422,
        "invalid_secret",
    )
    assert error["details"]["maximum"] == 64
    # Replacing one of the 64 is still fine.
    assert (await gateway.put(f"{url}/S0", json={"value": "w"}, headers=alice)).status_code == 200


async def test_deleting_the_api_deletes_its_secrets(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    url = f"/api/v1/apis/{api['id']}/secrets/KEY"
    assert (await gateway.put(url, json={"value": VALUE}, headers=alice)).status_code == 200
    assert (await gateway.delete(f"/api/v1/apis/{api['id']}", headers=alice)).status_code == 204
    assert await _stored(gateway_settings, api["id"]) == {}
