"""The marketplace end to end: browse, subscribe, keys shown once, rotate, revoke, cancel."""

from __future__ import annotations

import hashlib

import httpx

from shared.auth import api_keys
from shared.settings import GatewaySettings
from tests.integration.conftest import assert_error, create_api, signup
from tests.integration.marketplace_support import (
    FREE,
    PRO,
    public_api,
    stored_keys,
    subscribe,
)


async def test_full_marketplace_flow(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    dev = await signup(gateway, email="weather.dev@example.com")
    api, (free, pro) = await public_api(gateway, dev, plans=(FREE, PRO))
    consumer = await signup(gateway, role="consumer")

    # Anyone can browse, signed in or not.
    listing = await gateway.get("/api/v1/marketplace/apis")
    assert listing.status_code == 200, listing.text
    page = listing.json()
    assert page["total"] == 1
    (item,) = page["items"]
    assert item["id"] == api["id"]
    assert item["owner"] == "weather.dev"
    assert "example.com" not in listing.text
    assert item["has_free_plan"] is True
    assert item["lowest_price"] == {"price_per_1000_minor": 0, "currency": "USD"}
    assert item["plan_count"] == 2
    assert item["running"] is False
    assert item["url"].endswith(f"/{api['slug']}/")
    for query in ("WEATHER", "now", "forecasts by", api["slug"]):
        found = await gateway.get("/api/v1/marketplace/apis", params={"q": query})
        assert found.json()["total"] == 1, query
    for query in ("nothing-like-it", "%", "_"):
        missing = await gateway.get("/api/v1/marketplace/apis", params={"q": query})
        assert missing.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}, query

    detail = await gateway.get(f"/api/v1/marketplace/apis/{api['id']}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["description"] == "Forecasts by Weather Now"
    assert body["url"] in body["example_request"]
    assert "X-API-Key: <your key>" in body["example_request"]
    assert [p["id"] for p in body["plans"]] == [free["id"], pro["id"]]
    assert body["plans"][1]["is_free"] is False
    assert body["plans"][1]["price_per_1000_minor"] == 250
    assert body["plans"][1]["currency"] == "EUR"

    # Two plans: the consumer must choose.
    url = f"/api/v1/marketplace/apis/{api['id']}/subscribe"
    assert_error(await gateway.post(url, json={}, headers=consumer), 422, "plan_required")
    subscribed = await subscribe(gateway, consumer, api["id"], pro["id"])
    first_key = subscribed["api_key"]
    assert api_keys.well_formed(first_key)
    subscription = subscribed["subscription"]
    assert subscription["status"] == "active"
    assert subscription["plan"]["id"] == pro["id"]
    assert subscription["api_slug"] == api["slug"]
    assert subscribed["key"]["prefix"] == first_key[:16] + "…"
    again = await gateway.post(url, json={"plan_id": free["id"]}, headers=consumer)
    assert_error(again, 409, "already_subscribed")

    mine = await gateway.get("/api/v1/subscriptions", headers=consumer)
    assert [s["id"] for s in mine.json()["items"]] == [subscription["id"]]
    assert mine.json()["items"][0]["api_name"] == "Weather Now"
    sub_url = f"/api/v1/subscriptions/{subscription['id']}"
    assert (await gateway.get(sub_url, headers=consumer)).json() == subscription

    keys = await gateway.get(f"{sub_url}/keys", headers=consumer)
    assert keys.status_code == 200
    (listed,) = keys.json()["items"]
    assert set(listed) == {
        "id",
        "subscription_id",
        "prefix",
        "name",
        "created_at",
        "revoked_at",
        "last_used_at",
    }
    assert listed["prefix"] == first_key[:16] + "…"
    assert first_key not in keys.text
    assert hashlib.sha256(first_key.encode()).hexdigest() not in keys.text

    second = await gateway.post(f"{sub_url}/keys", json={"name": "ci"}, headers=consumer)
    assert second.status_code == 201, second.text
    assert second.json()["key"]["name"] == "ci"
    second_key = second.json()["api_key"]
    assert api_keys.well_formed(second_key)
    assert second_key != first_key

    rotated = await gateway.post(
        f"/api/v1/keys/{second.json()['key']['id']}/rotate", headers=consumer
    )
    assert rotated.status_code == 201, rotated.text
    third_key = rotated.json()["api_key"]
    assert rotated.json()["key"]["name"] == "ci"
    assert third_key not in (first_key, second_key)
    again_rotated = await gateway.post(
        f"/api/v1/keys/{second.json()['key']['id']}/rotate", headers=consumer
    )
    assert_error(again_rotated, 409, "key_revoked")

    first_id = subscribed["key"]["id"]
    assert (await gateway.delete(f"/api/v1/keys/{first_id}", headers=consumer)).status_code == 204
    assert (await gateway.delete(f"/api/v1/keys/{first_id}", headers=consumer)).status_code == 204
    states = {
        k["id"]: k["revoked_at"]
        for k in (await gateway.get(f"{sub_url}/keys", headers=consumer)).json()["items"]
    }
    assert len(states) == 3
    assert states[first_id] is not None
    assert states[second.json()["key"]["id"]] is not None
    assert states[rotated.json()["key"]["id"]] is None

    # The owner sees the subscriber by display name only.
    subscribers = await gateway.get(f"/api/v1/apis/{api['id']}/subscribers", headers=dev)
    assert subscribers.status_code == 200, subscribers.text
    (subscriber,) = subscribers.json()["items"]
    assert subscriber["id"] == subscription["id"]
    assert subscriber["plan"] == {"id": pro["id"], "name": "Pro"}
    assert "@" not in subscriber["consumer"]

    # The database holds hashes only.
    rows = await stored_keys(gateway_settings)
    assert {r.key_hash for r in rows} == {
        hashlib.sha256(k.encode()).hexdigest() for k in (first_key, second_key, third_key)
    }
    for row in rows:
        for column in ("key_hash", "prefix", "name"):
            assert getattr(row, column) not in (first_key, second_key, third_key)
        assert row.api_id == api["id"]

    # Cancel: every key revoked, no new keys; subscribing again works.
    assert (await gateway.delete(sub_url, headers=consumer)).status_code == 204
    assert (await gateway.delete(sub_url, headers=consumer)).status_code == 204
    cancelled = (await gateway.get(sub_url, headers=consumer)).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelled_at"] is not None
    keys_after = (await gateway.get(f"{sub_url}/keys", headers=consumer)).json()["items"]
    assert all(k["revoked_at"] is not None for k in keys_after)
    new_key = await gateway.post(f"{sub_url}/keys", json={}, headers=consumer)
    assert_error(new_key, 409, "subscription_cancelled")
    rotate_cancelled = await gateway.post(
        f"/api/v1/keys/{rotated.json()['key']['id']}/rotate", headers=consumer
    )
    assert_error(rotate_cancelled, 409, "subscription_cancelled")
    renewed = await subscribe(gateway, consumer, api["id"], free["id"])
    assert renewed["subscription"]["id"] != subscription["id"]
    assert len((await gateway.get("/api/v1/subscriptions", headers=consumer)).json()["items"]) == 2


async def test_private_apis_are_invisible_to_everyone_but_their_owner(
    gateway: httpx.AsyncClient,
) -> None:
    dev = await signup(gateway)
    private, (plan,) = await public_api(gateway, dev, name="Secret Sauce", visibility="private")
    stranger = await signup(gateway, role="consumer")

    for headers in ({}, stranger, dev):
        listing = await gateway.get("/api/v1/marketplace/apis", headers=headers)
        assert listing.json()["total"] == 0
        search = await gateway.get("/api/v1/marketplace/apis?q=secret", headers=headers)
        assert search.json()["total"] == 0
    detail_url = f"/api/v1/marketplace/apis/{private['id']}"
    assert_error(await gateway.get(detail_url), 404, "api_not_found")
    assert_error(await gateway.get(detail_url, headers=stranger), 404, "api_not_found")
    missing = await gateway.get("/api/v1/marketplace/apis/no-such-id", headers=stranger)
    assert_error(missing, 404, "api_not_found")
    owner_view = await gateway.get(detail_url, headers=dev)
    assert owner_view.status_code == 200
    assert owner_view.json()["visibility"] == "private"
    sneaky = await gateway.post(
        f"{detail_url}/subscribe", json={"plan_id": plan["id"]}, headers=stranger
    )
    assert_error(sneaky, 404, "api_not_found")
    # The owner may subscribe to their own private API (to try it out).
    await subscribe(gateway, dev, private["id"])
    # A bad token is refused rather than treated as anonymous.
    bad = await gateway.get(detail_url, headers={"Authorization": "Bearer nope"})
    assert_error(bad, 401, "invalid_token")


async def test_search_is_paginated_and_shows_only_active_plans(
    gateway: httpx.AsyncClient,
) -> None:
    dev = await signup(gateway)
    for name in ("Alpha maps", "Beta maps", "Gamma maps"):
        await public_api(gateway, dev, name=name, plans=(PRO,))
    await public_api(gateway, dev, name="Unrelated", plans=())
    first = await gateway.get("/api/v1/marketplace/apis", params={"q": "MAPS", "limit": 2})
    assert first.json()["total"] == 3
    assert [i["name"] for i in first.json()["items"]] == ["Alpha maps", "Beta maps"]
    rest = await gateway.get(
        "/api/v1/marketplace/apis", params={"q": "maps", "limit": 2, "offset": 2}
    )
    assert [i["name"] for i in rest.json()["items"]] == ["Gamma maps"]
    everything = (await gateway.get("/api/v1/marketplace/apis")).json()
    assert everything["total"] == 4
    unrelated = next(i for i in everything["items"] if i["name"] == "Unrelated")
    assert unrelated["lowest_price"] is None
    assert unrelated["has_free_plan"] is False
    assert_error(await gateway.get("/api/v1/marketplace/apis?limit=0"), 422, "validation_error")
    assert_error(await gateway.get("/api/v1/marketplace/apis?limit=101"), 422)
    assert_error(await gateway.get("/api/v1/marketplace/apis?offset=-1"), 422)


async def test_subscribe_rules(gateway: httpx.AsyncClient) -> None:
    dev = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    empty, _ = await public_api(gateway, dev, name="Empty", plans=())
    url = f"/api/v1/marketplace/apis/{empty['id']}/subscribe"
    assert_error(await gateway.post(url, headers=consumer), 409, "no_active_plan")

    api, (plan,) = await public_api(gateway, dev, name="One plan")
    other_api, (other_plan,) = await public_api(gateway, dev, name="Other")
    url = f"/api/v1/marketplace/apis/{api['id']}/subscribe"
    wrong = await gateway.post(url, json={"plan_id": other_plan["id"]}, headers=consumer)
    assert_error(wrong, 404, "plan_not_found")
    assert_error(await gateway.post(url, json={"plan": "x"}, headers=consumer), 422)
    # Exactly one active plan: plan_id may be left out, body and all.
    subscribed = await gateway.post(url, headers=consumer)
    assert subscribed.status_code == 201, subscribed.text
    assert subscribed.json()["subscription"]["plan"]["id"] == plan["id"]

    sub_url = f"/api/v1/subscriptions/{subscribed.json()['subscription']['id']}/keys"
    for _ in range(9):
        assert (await gateway.post(sub_url, headers=consumer)).status_code == 201
    assert_error(await gateway.post(sub_url, headers=consumer), 409, "too_many_keys")
    assert other_api["id"] != api["id"]


async def test_deleting_an_api_removes_its_plans_subscriptions_and_keys(
    gateway: httpx.AsyncClient, gateway_settings: GatewaySettings
) -> None:
    dev = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    api, _ = await public_api(gateway, dev)
    kept = await create_api(gateway, dev, name="Kept")
    await subscribe(gateway, consumer, api["id"])
    assert (await gateway.delete(f"/api/v1/apis/{api['id']}", headers=dev)).status_code == 204
    assert (await gateway.get("/api/v1/subscriptions", headers=consumer)).json()["items"] == []
    assert await stored_keys(gateway_settings) == []
    assert (await gateway.get(f"/api/v1/apis/{kept['id']}", headers=dev)).status_code == 200
