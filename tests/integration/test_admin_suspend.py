"""Admins suspend an API or a user: every effect, on the control plane and the data plane,
and lifting the suspension restores what it took away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.build_queue import STOP_JOB
from shared.auth.api_keys import hash_key
from shared.db import create_engine, create_sessionmaker
from shared.invalidation import KEYS_CHANNEL, ROUTES_CHANNEL
from shared.models import User
from shared.settings import DataPlaneSettings, GatewaySettings
from tests.integration.admin_support import (
    Sessions,
    admin_headers,
    audit_entries,
    data_plane,
    echo_upstream,
    eventually,
    queued_jobs,
    serve_from,
    user_id_of,
)
from tests.integration.conftest import (
    SAMPLE_APP,
    assert_error,
    create_api,
    published_so_far,
    signup,
    upload,
    zip_bytes,
)
from tests.integration.marketplace_support import public_api, subscribe

ADMIN = "/api/v1/admin"


@pytest.fixture
async def sessions(gateway_settings: GatewaySettings) -> AsyncIterator[Sessions]:
    engine = create_engine(gateway_settings.resolved_database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async with echo_upstream() as url:
        yield url


@pytest.fixture
async def plane(make_settings: Any, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with data_plane(make_settings(DataPlaneSettings), redis) as client:
        yield client


async def _serving_api(
    gateway: httpx.AsyncClient,
    sessions: Sessions,
    owner: dict[str, str],
    upstream: str,
    name: str,
) -> dict[str, Any]:
    """A public API with one free plan, an uploaded version, routed to `upstream`."""
    api, _plans = await public_api(gateway, owner, name=name)
    archive = zip_bytes({"main.py": SAMPLE_APP})
    assert (await upload(gateway, owner, api["id"], archive)).status_code == 201
    await serve_from(sessions, api["id"], upstream)
    return api


async def test_moderation_needs_an_admin(gateway: httpx.AsyncClient) -> None:
    dev = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    api = await create_api(gateway, dev)
    user_id = await user_id_of(gateway, consumer)
    endpoints = [
        ("GET", f"{ADMIN}/users"),
        ("GET", f"{ADMIN}/apis"),
        ("POST", f"{ADMIN}/apis/{api['id']}/suspend"),
        ("POST", f"{ADMIN}/apis/{api['id']}/unsuspend"),
        ("POST", f"{ADMIN}/users/{user_id}/suspend"),
        ("POST", f"{ADMIN}/users/{user_id}/unsuspend"),
    ]
    for method, url in endpoints:
        for headers in (dev, consumer):
            assert_error(await gateway.request(method, url, headers=headers), 403, "admin_only")
        assert_error(await gateway.request(method, url), 401, "unauthorized")
    assert (await gateway.get(f"/api/v1/apis/{api['id']}", headers=dev)).json()[
        "suspended"
    ] is False
    assert (await gateway.get("/api/v1/auth/me", headers=consumer)).status_code == 200


async def test_unknown_ids_and_bad_bodies(gateway: httpx.AsyncClient, sessions: Sessions) -> None:
    admin, _ = await admin_headers(gateway, sessions)
    for action in ("suspend", "unsuspend"):
        response = await gateway.post(f"{ADMIN}/apis/no-such-api/{action}", headers=admin)
        assert_error(response, 404, "api_not_found")
        response = await gateway.post(f"{ADMIN}/users/no-such-user/{action}", headers=admin)
        assert_error(response, 404, "user_not_found")
    dev = await signup(gateway)
    api = await create_api(gateway, dev)
    url = f"{ADMIN}/apis/{api['id']}/suspend"
    too_long = await gateway.post(url, json={"reason": "x" * 501}, headers=admin)
    assert_error(too_long, 422, "validation_error")
    extra = await gateway.post(url, json={"reason": "x", "until": "never"}, headers=admin)
    assert_error(extra, 422, "validation_error")
    assert (await gateway.get(f"/api/v1/apis/{api['id']}", headers=dev)).json()[
        "suspended"
    ] is False
    bad_cursor = await gateway.get(f"{ADMIN}/users", params={"cursor": "nope"}, headers=admin)
    assert_error(bad_cursor, 422, "invalid_cursor")


async def test_suspended_api_is_stopped_hidden_refused_and_restored(
    gateway: httpx.AsyncClient,
    gateway_settings: GatewaySettings,
    sessions: Sessions,
    plane: httpx.AsyncClient,
    upstream: str,
    redis: Redis,
) -> None:
    admin, admin_id = await admin_headers(gateway, sessions)
    dev = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    api = await _serving_api(gateway, sessions, dev, upstream, "Weather Now")
    base = f"/api/v1/apis/{api['id']}"
    key = {"X-API-Key": (await subscribe(gateway, consumer, api["id"]))["api_key"]}
    path = f"/{api['slug']}/today"
    for headers in (key, dev):  # both cached by the data plane now
        assert (await plane.get(path, headers=headers)).status_code == 200
    queued = await gateway.post(f"{base}/deploy", headers=dev)
    assert queued.status_code == 202, queued.text

    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(ROUTES_CHANNEL)
        response = await gateway.post(
            f"{ADMIN}/apis/{api['id']}/suspend", json={"reason": " Phishing pages "}, headers=admin
        )
        assert response.status_code == 200, response.text
        assert await published_so_far(pubsub) == [api["slug"]]
        await pubsub.unsubscribe(ROUTES_CHANNEL)
    body = response.json()
    assert body["suspended"] is True
    assert body["suspension_reason"] == "Phishing pages"
    assert body["suspension_cause"] == "api"
    assert body["suspended_by"] == admin_id
    assert body["suspended_at"]
    assert body["owner_email"].endswith("@example.com")

    # The container is stopped the way an admin stop does it; the queued deploy is off.
    assert (STOP_JOB, (api["id"],)) in queued_jobs(gateway_settings)
    deployments = (await gateway.get(f"{base}/deployments", headers=dev)).json()["items"]
    cancelled = next(d for d in deployments if d["id"] == queued.json()["deployment_id"])
    assert cancelled["status"] == "failed"
    assert "suspended" in cancelled["error"]

    # The data plane refuses every caller, with a key or the owner's token.
    for headers in (key, dev):
        assert_error(await eventually(plane, path, headers, 403), 403, "api_suspended")

    # The owner sees it, with the reason, and can neither deploy nor start it.
    mine = (await gateway.get(base, headers=dev)).json()
    assert (mine["suspended"], mine["suspension_reason"]) == (True, "Phishing pages")
    listed = (await gateway.get("/api/v1/apis", headers=dev)).json()["items"]
    assert [(a["id"], a["suspended"]) for a in listed] == [(api["id"], True)]
    for url, body_in in (
        (f"{base}/deploy", None),
        (f"{base}/rollback", {"version": 1}),
        (f"{base}/start", None),
        (f"{base}/restart", None),
    ):
        refused = await gateway.post(url, json=body_in, headers=dev)
        assert "suspended" in assert_error(refused, 409, "api_suspended")["message"]

    # Off the marketplace: not listed, not found, not subscribable, except for its owner.
    assert (await gateway.get("/api/v1/marketplace/apis")).json()["total"] == 0
    found = await gateway.get("/api/v1/marketplace/apis", params={"q": api["slug"]})
    assert found.json()["total"] == 0
    detail_url = f"/api/v1/marketplace/apis/{api['id']}"
    for headers in ({}, consumer):
        assert_error(await gateway.get(detail_url, headers=headers), 404, "api_not_found")
    assert (await gateway.get(detail_url, headers=dev)).json()["suspended"] is True
    other = await signup(gateway, role="consumer")
    sub_url = f"{detail_url}/subscribe"
    assert_error(await gateway.post(sub_url, json={}, headers=other), 404, "api_not_found")
    assert_error(await gateway.post(sub_url, json={}, headers=dev), 409, "api_suspended")

    # Suspending again replaces the record and queues another stop.
    again = await gateway.post(f"{ADMIN}/apis/{api['id']}/suspend", headers=admin)
    assert again.status_code == 200, again.text
    assert again.json()["suspension_reason"] is None
    assert queued_jobs(gateway_settings).count((STOP_JOB, (api["id"],))) == 2

    # Lifted: callable again (the fake deployment still serves; a real one is started by
    # its owner), listed again, deployable again.
    lifted = await gateway.post(f"{ADMIN}/apis/{api['id']}/unsuspend", headers=admin)
    assert lifted.status_code == 200, lifted.text
    assert (lifted.json()["suspended"], lifted.json()["suspension_cause"]) == (False, None)
    assert (await eventually(plane, path, key, 200)).status_code == 200
    assert (await gateway.get("/api/v1/marketplace/apis")).json()["total"] == 1
    assert (await gateway.get(base, headers=dev)).json()["suspended"] is False
    assert (await gateway.post(f"{base}/deploy", headers=dev)).status_code == 202
    # Lifting twice is fine, and logged once.
    assert (await gateway.post(f"{ADMIN}/apis/{api['id']}/unsuspend", headers=admin)).is_success

    entries = await audit_entries(gateway, admin)
    assert [(e["action"], e["target_id"], e["actor_id"]) for e in entries] == [
        ("api.unsuspend", api["id"], admin_id),
        ("api.suspend", api["id"], admin_id),
        ("api.suspend", api["id"], admin_id),
    ]
    assert entries[2]["details"] == {"slug": api["slug"], "reason": "Phishing pages"}


async def test_suspended_user_loses_sign_in_tokens_keys_and_apis(
    gateway: httpx.AsyncClient,
    gateway_settings: GatewaySettings,
    sessions: Sessions,
    plane: httpx.AsyncClient,
    upstream: str,
    redis: Redis,
) -> None:
    admin, admin_id = await admin_headers(gateway, sessions)
    provider = await signup(gateway)
    market_api = await _serving_api(gateway, sessions, provider, upstream, "Market")
    credentials = {"email": "mallory@example.com", "password": "correct horse"}
    signed_up = await gateway.post("/api/v1/auth/signup", json=credentials)
    mallory = {"Authorization": f"Bearer {signed_up.json()['access_token']}"}
    refresh_token = signed_up.json()["refresh_token"]
    mallory_id = signed_up.json()["user"]["id"]
    own = await _serving_api(gateway, sessions, mallory, upstream, "Own")
    extra = await create_api(gateway, mallory, name="Extra")
    plaintext = (await subscribe(gateway, mallory, market_api["id"]))["api_key"]
    key = {"X-API-Key": plaintext}
    market_path, own_path = f"/{market_api['slug']}/x", f"/{own['slug']}/x"
    assert (await plane.get(market_path, headers=key)).status_code == 200
    assert (await plane.get(own_path, headers=mallory)).status_code == 200

    # One API of hers is suspended on its own first.
    on_its_own = await gateway.post(
        f"{ADMIN}/apis/{extra['id']}/suspend", json={"reason": "spam"}, headers=admin
    )
    assert on_its_own.status_code == 200

    myself = await gateway.post(f"{ADMIN}/users/{admin_id}/suspend", headers=admin)
    assert_error(myself, 409, "cannot_suspend_self")
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(ROUTES_CHANNEL, KEYS_CHANNEL)
        response = await gateway.post(
            f"{ADMIN}/users/{mallory_id}/suspend", json={"reason": "Fraud"}, headers=admin
        )
        assert response.status_code == 200, response.text
        published = set(await published_so_far(pubsub))
        await pubsub.unsubscribe(ROUTES_CHANNEL, KEYS_CHANNEL)
    assert published == {own["slug"], hash_key(plaintext), f"user:{mallory_id}"}
    user = response.json()
    assert (user["id"], user["suspended"], user["suspension_reason"]) == (mallory_id, True, "Fraud")
    assert (user["suspended_by"], user["api_count"], user["role"]) == (admin_id, 2, "developer")

    # No sign-in, no refresh, no control plane with the tokens she already has.
    login = await gateway.post("/api/v1/auth/login", json=credentials)
    assert_error(login, 403, "account_suspended")
    wrong = await gateway.post("/api/v1/auth/login", json={**credentials, "password": "guess1234"})
    assert_error(wrong, 401, "invalid_credentials")  # says nothing without the password
    refreshed = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert_error(refreshed, 403, "account_suspended")
    for url in ("/api/v1/auth/me", "/api/v1/apis", "/api/v1/subscriptions"):
        assert_error(await gateway.get(url, headers=mallory), 403, "account_suspended")

    # Her key stops at once (it was cached), her APIs are suspended and stopped.
    assert_error(await eventually(plane, market_path, key, 401), 401, "invalid_api_key")
    assert_error(await eventually(plane, own_path, mallory, 403), 403, "api_suspended")
    assert (STOP_JOB, (own["id"],)) in queued_jobs(gateway_settings)
    listed = await gateway.get(f"{ADMIN}/apis", params={"q": "mallory@"}, headers=admin)
    causes = {
        a["id"]: (a["suspension_cause"], a["suspension_reason"]) for a in listed.json()["items"]
    }
    assert causes == {own["id"]: ("owner", "Fraud"), extra["id"]: ("api", "spam")}
    alone = await gateway.post(f"{ADMIN}/apis/{own['id']}/unsuspend", headers=admin)
    assert_error(alone, 409, "owner_suspended")
    suspended_users = await gateway.get(f"{ADMIN}/users", params={"suspended": True}, headers=admin)
    assert [u["id"] for u in suspended_users.json()["items"]] == [mallory_id]

    # Lifted: sign-in, tokens, key and the API suspended because of her come back; the
    # API suspended on its own stays suspended.
    lifted = await gateway.post(f"{ADMIN}/users/{mallory_id}/unsuspend", headers=admin)
    assert lifted.status_code == 200, lifted.text
    assert (lifted.json()["suspended"], lifted.json()["suspension_reason"]) == (False, None)
    assert (await gateway.post("/api/v1/auth/login", json=credentials)).status_code == 200
    assert (await gateway.get("/api/v1/auth/me", headers=mallory)).status_code == 200
    again = await gateway.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert again.status_code == 200, again.text
    assert (await eventually(plane, market_path, key, 200)).status_code == 200
    assert (await eventually(plane, own_path, mallory, 200)).status_code == 200
    mine = {
        a["id"]: a["suspended"]
        for a in (await gateway.get("/api/v1/apis", headers=mallory)).json()["items"]
    }
    assert mine == {own["id"]: False, extra["id"]: True}

    entries = await audit_entries(gateway, admin)
    assert [(e["action"], e["target_id"]) for e in entries] == [
        ("user.unsuspend", mallory_id),
        ("user.suspend", mallory_id),
        ("api.suspend", extra["id"]),
    ]
    assert entries[0]["details"]["apis_unsuspended"] == [own["id"]]
    assert entries[1]["details"] == {
        "email": "mallory@example.com",
        "reason": "Fraud",
        "apis_suspended": [own["id"]],
    }


async def signed_in_admin(
    gateway: httpx.AsyncClient, sessions: Sessions
) -> tuple[dict[str, str], str]:
    """A second admin, signed in again after the promotion (sign-up made a developer's
    token; the role is in the token): its headers and id."""
    _, admin_id = await admin_headers(gateway, sessions)
    async with sessions() as session:
        admin = await session.get(User, admin_id)
        assert admin is not None
        email = admin.email
    login = await gateway.post(
        "/api/v1/auth/login", json={"email": email, "password": "correct horse"}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}, admin_id


async def test_a_suspended_admin_s_token_stops_on_the_data_plane_at_once(
    gateway: httpx.AsyncClient, sessions: Sessions, plane: httpx.AsyncClient, upstream: str
) -> None:
    """Admins (and owners) call with access tokens, which live 15 minutes: the data
    plane checks the account itself, cached, and drops the entry when told."""
    admin, _ = await admin_headers(gateway, sessions)
    other_admin, other_id = await signed_in_admin(gateway, sessions)
    provider = await signup(gateway)
    api = await _serving_api(gateway, sessions, provider, upstream, "Watched")
    path = f"/{api['slug']}/x"
    assert (await plane.get(path, headers=other_admin)).status_code == 200  # now cached

    suspended = await gateway.post(f"{ADMIN}/users/{other_id}/suspend", headers=admin)
    assert suspended.status_code == 200, suspended.text
    refused = await eventually(plane, path, other_admin, 403)
    assert_error(refused, 403, "account_suspended")
    assert (await plane.get(path, headers=provider)).status_code == 200  # the owner is not

    lifted = await gateway.post(f"{ADMIN}/users/{other_id}/unsuspend", headers=admin)
    assert lifted.status_code == 200, lifted.text
    assert (await eventually(plane, path, other_admin, 200)).status_code == 200


async def test_a_demoted_admin_s_token_stops_reaching_other_apis_at_once(
    gateway: httpx.AsyncClient, sessions: Sessions, plane: httpx.AsyncClient, upstream: str
) -> None:
    """The token still says `admin` for up to 15 minutes; the data plane asks the account."""
    admin, admin_id = await admin_headers(gateway, sessions)
    other_admin, other_id = await signed_in_admin(gateway, sessions)
    provider = await signup(gateway)
    api = await _serving_api(gateway, sessions, provider, upstream, "Guarded")
    path = f"/{api['slug']}/x"
    assert (await plane.get(path, headers=other_admin)).status_code == 200  # now cached

    demoted = await gateway.post(
        f"{ADMIN}/users/{other_id}/role", json={"role": "developer"}, headers=admin
    )
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["role"] == "developer"
    refused = await eventually(plane, path, other_admin, 403)
    assert_error(refused, 403, "not_subscribed")
    # The control plane agrees: the same token is no admin's any more.
    assert_error(await gateway.get(f"{ADMIN}/users", headers=other_admin), 403)
    # An admin keeps their own role; a role that does not exist is a 422.
    own = await gateway.post(
        f"{ADMIN}/users/{admin_id}/role", json={"role": "consumer"}, headers=admin
    )
    assert_error(own, 409, "cannot_demote_self")
    assert_error(
        await gateway.post(f"{ADMIN}/users/{other_id}/role", json={"role": "root"}, headers=admin),
        422,
    )
    entry = (await audit_entries(gateway, admin))[0]
    assert (entry["action"], entry["details"]["previous"], entry["details"]["role"]) == (
        "user.role",
        "admin",
        "developer",
    )


async def test_admin_lists_users_and_apis_a_page_at_a_time(
    gateway: httpx.AsyncClient, sessions: Sessions
) -> None:
    admin, _ = await admin_headers(gateway, sessions)
    users = [await signup(gateway, email=f"page{i}@list.example.com") for i in range(5)]
    for name in ("First", "Second"):
        await create_api(gateway, users[0], name=name)

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"q": "LIST.example", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await gateway.get(f"{ADMIN}/users", params=params, headers=admin)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
    assert cursor is None
    assert [u["email"] for u in seen] == [f"page{i}@list.example.com" for i in (4, 3, 2, 1, 0)]
    assert [u["api_count"] for u in seen] == [0, 0, 0, 0, 2]
    assert set(seen[0]) == {
        "id",
        "email",
        "role",
        "created_at",
        "suspended",
        "suspended_at",
        "suspended_by",
        "suspension_reason",
        "api_count",
    }
    everyone = (await gateway.get(f"{ADMIN}/users", headers=admin)).json()
    assert len(everyone["items"]) == 6
    assert everyone["next_cursor"] is None
    for query in ("%", "_", "nobody"):
        found = await gateway.get(f"{ADMIN}/users", params={"q": query}, headers=admin)
        assert found.json() == {"items": [], "next_cursor": None}, query

    apis = await gateway.get(f"{ADMIN}/apis", params={"limit": 1}, headers=admin)
    first = apis.json()
    assert [a["name"] for a in first["items"]] == ["Second"]
    rest = await gateway.get(
        f"{ADMIN}/apis", params={"limit": 1, "cursor": first["next_cursor"]}, headers=admin
    )
    assert [a["name"] for a in rest.json()["items"]] == ["First"]
    assert rest.json()["next_cursor"] is None
    only = await gateway.get(f"{ADMIN}/apis", params={"suspended": True}, headers=admin)
    assert only.json()["items"] == []
