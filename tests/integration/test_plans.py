"""Plans: owner-only, validated, archived (not deleted) once subscribed."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import assert_error, create_api, signup
from tests.integration.marketplace_support import FREE, PRO, public_api, subscribe


async def test_plan_crud_is_owner_only(gateway: httpx.AsyncClient) -> None:
    dev = await signup(gateway)
    other_dev = await signup(gateway)
    consumer = await signup(gateway, role="consumer")
    api = await create_api(gateway, dev)
    url = f"/api/v1/apis/{api['id']}/plans"

    created = await gateway.post(url, json={"name": "  Starter  "}, headers=dev)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["name"] == "Starter"
    assert plan["is_free"] is True
    assert plan["currency"] == "USD"
    assert plan["included_calls_per_month"] == 0
    assert plan["rate_per_second"] is None
    assert plan["archived_at"] is None

    patched = await gateway.patch(
        f"{url}/{plan['id']}",
        json={"price_per_1000_minor": 99, "rate_per_second": 3, "burst": 3},
        headers=dev,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["is_free"] is False
    assert patched.json()["burst"] == 3
    lifted = await gateway.patch(
        f"{url}/{plan['id']}", json={"rate_per_second": None, "burst": None}, headers=dev
    )
    assert lifted.json()["rate_per_second"] is None

    assert_error(await gateway.get(url, headers=other_dev), 404, "api_not_found")
    assert_error(await gateway.post(url, json=FREE, headers=other_dev), 404, "api_not_found")
    assert_error(await gateway.post(url, json=FREE, headers=consumer), 403, "developer_only")
    assert_error(await gateway.get(url), 401)
    patch_other = await gateway.patch(f"{url}/{plan['id']}", json={"name": "x"}, headers=other_dev)
    assert_error(patch_other, 404, "api_not_found")
    other_api = await create_api(gateway, other_dev, name="Theirs")
    cross = await gateway.delete(
        f"/api/v1/apis/{other_api['id']}/plans/{plan['id']}", headers=other_dev
    )
    assert_error(cross, 404, "plan_not_found")

    # A plan nobody subscribed to is deleted outright.
    assert (await gateway.delete(f"{url}/{plan['id']}", headers=dev)).status_code == 204
    assert (await gateway.get(url, headers=dev)).json()["items"] == []
    assert_error(await gateway.delete(f"{url}/{plan['id']}", headers=dev), 404, "plan_not_found")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "burst": 5}, "invalid_plan"),
        ({"name": "x", "rate_per_second": 10, "burst": 5}, "invalid_plan"),
        ({"name": "   "}, "invalid_plan"),
        ({"name": ""}, "validation_error"),
        ({"name": "x" * 61}, "validation_error"),
        ({"name": "x", "currency": "usd"}, "validation_error"),
        ({"name": "x", "currency": "EURO"}, "validation_error"),
        ({"name": "x", "price_per_1000_minor": -1}, "validation_error"),
        ({"name": "x", "included_calls_per_month": -5}, "validation_error"),
        ({"name": "x", "rate_per_second": 0}, "validation_error"),
        ({"name": "x", "daily_quota": -1}, "validation_error"),
        ({"name": "x", "monthly_quota": 2**63}, "validation_error"),
        ({"name": "x", "rate_per_second": 2**31}, "validation_error"),
        ({"name": "x", "price_per_1000_minor": 1.5}, "validation_error"),
        ({"name": "x", "archived_at": None}, "validation_error"),
        ({}, "validation_error"),
    ],
)
async def test_invalid_plans_are_422(
    module_gateway: httpx.AsyncClient, body: dict[str, object], code: str
) -> None:
    gateway = module_gateway  # each refused: nothing stored that the next case could see
    dev = await signup(gateway)
    api = await create_api(gateway, dev)
    response = await gateway.post(f"/api/v1/apis/{api['id']}/plans", json=body, headers=dev)
    assert_error(response, 422, code)


async def test_patch_is_validated_against_the_stored_plan(gateway: httpx.AsyncClient) -> None:
    dev = await signup(gateway)
    api, (plan,) = await public_api(gateway, dev, plans=(FREE,))  # rate 5, burst 10
    url = f"/api/v1/apis/{api['id']}/plans/{plan['id']}"
    assert_error(await gateway.patch(url, json={"burst": 4}, headers=dev), 422, "invalid_plan")
    dropped_rate = await gateway.patch(url, json={"rate_per_second": None}, headers=dev)
    assert_error(dropped_rate, 422, "invalid_plan")
    assert_error(await gateway.patch(url, json={"name": None}, headers=dev), 422, "invalid_plan")
    assert_error(await gateway.patch(url, json={"currency": "eur"}, headers=dev), 422)
    stored = (await gateway.get(f"/api/v1/apis/{api['id']}/plans", headers=dev)).json()
    assert stored["items"][0]["burst"] == 10
    assert stored["items"][0]["rate_per_second"] == 5


async def test_subscribed_plan_is_archived_and_no_longer_offered(
    gateway: httpx.AsyncClient,
) -> None:
    dev = await signup(gateway)
    first, second = await signup(gateway, role="consumer"), await signup(gateway, role="consumer")
    api, (free, pro) = await public_api(gateway, dev, plans=(FREE, PRO))
    subscribed = await subscribe(gateway, first, api["id"], pro["id"])
    plans_url = f"/api/v1/apis/{api['id']}/plans"

    assert (await gateway.delete(f"{plans_url}/{pro['id']}", headers=dev)).status_code == 204
    assert (await gateway.delete(f"{plans_url}/{pro['id']}", headers=dev)).status_code == 204
    owner_view = (await gateway.get(plans_url, headers=dev)).json()["items"]
    assert [(p["id"], p["archived_at"] is not None) for p in owner_view] == [
        (free["id"], False),
        (pro["id"], True),
    ]
    detail = (await gateway.get(f"/api/v1/marketplace/apis/{api['id']}")).json()
    assert [p["id"] for p in detail["plans"]] == [free["id"]]
    listing = (await gateway.get("/api/v1/marketplace/apis")).json()["items"][0]
    assert listing["plan_count"] == 1

    archived = await gateway.post(
        f"/api/v1/marketplace/apis/{api['id']}/subscribe",
        json={"plan_id": pro["id"]},
        headers=second,
    )
    assert_error(archived, 409, "plan_archived")
    # One active plan left: it is picked without plan_id.
    picked = await subscribe(gateway, second, api["id"])
    assert picked["subscription"]["plan"]["id"] == free["id"]
    # The existing subscriber keeps the archived plan.
    sub_url = f"/api/v1/subscriptions/{subscribed['subscription']['id']}"
    kept = (await gateway.get(sub_url, headers=first)).json()
    assert kept["status"] == "active"
    assert kept["plan"]["id"] == pro["id"]
    assert kept["plan"]["archived_at"] is not None
