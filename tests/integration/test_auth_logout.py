"""Logout: the refresh token (and the login it belongs to) stops working; idempotent."""

from __future__ import annotations

import httpx

from tests.integration.conftest import assert_error

CREDENTIALS = {"email": "leaving@example.com", "password": "correct horse"}


async def _logout(gateway: httpx.AsyncClient, token: str) -> httpx.Response:
    return await gateway.post("/api/v1/auth/logout", json={"refresh_token": token})


async def test_logout_revokes_the_refresh_token_and_only_its_login(
    gateway: httpx.AsyncClient,
) -> None:
    first = (await gateway.post("/api/v1/auth/signup", json=CREDENTIALS)).json()
    second = (await gateway.post("/api/v1/auth/login", json=CREDENTIALS)).json()

    out = await _logout(gateway, first["refresh_token"])
    assert out.status_code == 204
    assert out.content == b""
    refused = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert_error(refused, 401, "refresh_token_reused")
    # Twice, or a token nobody issued: the same 204, nothing to learn from the answer.
    assert (await _logout(gateway, first["refresh_token"])).status_code == 204
    assert (await _logout(gateway, "veil_rt_never_issued")).status_code == 204
    # The other login (another device) goes on.
    other = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert other.status_code == 200, other.text


async def test_logout_with_a_rotated_token_ends_the_whole_login(
    gateway: httpx.AsyncClient,
) -> None:
    first = (await gateway.post("/api/v1/auth/signup", json=CREDENTIALS)).json()
    rotated = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    latest = rotated.json()["refresh_token"]
    assert (await _logout(gateway, latest)).status_code == 204
    after = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": latest})
    assert_error(after, 401, "refresh_token_reused")


async def test_logout_needs_a_token_in_the_body(gateway: httpx.AsyncClient) -> None:
    assert_error(await gateway.post("/api/v1/auth/logout"), 422, "validation_error")
    assert_error(await gateway.post("/api/v1/auth/logout", json={}), 422, "validation_error")
    empty = await gateway.post("/api/v1/auth/logout", json={"refresh_token": ""})
    assert_error(empty, 422, "validation_error")
