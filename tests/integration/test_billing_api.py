"""Billing through the gateway (with analytics behind it): plan changes, usage with the
data plane's quota counters, invoices, earnings, revenue, and who may see what."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update

from analytics.app import create_app as create_analytics
from analytics.billing.service import period_bounds, period_of, previous_period
from gateway.app import create_app as create_gateway
from gateway.dataplane.limits import Limiter, Policy
from shared.auth.api_keys import hash_key
from shared.invalidation import KEYS_CHANNEL
from shared.models import Execution, SubscriptionPlanPeriod, User
from shared.settings import AnalyticsSettings, GatewaySettings
from tests.integration.billing_support import (
    Sessions,
    calls,
    invoice_with_lines,
    shop,
    subscribe_at,
)
from tests.integration.conftest import assert_error, published_so_far, signup
from tests.integration.marketplace_support import FREE, PRO, next_message, public_api, subscribe

PRO_USD = {"name": "Pro USD", "price_per_1000_minor": 100}
OLD = {"name": "Old", "price_per_1000_minor": 300, "currency": "EUR"}
TEAM = {"name": "Team", "price_per_1000_minor": 150, "currency": "EUR"}
METERED = {"name": "Metered", "price_per_1000_minor": 1999, "currency": "EUR"}
QUOTAS = {"name": "Quotas", "price_per_1000_minor": 1999, "daily_quota": 100, "monthly_quota": 1000}


@pytest.fixture
async def settings(make_settings: Any) -> GatewaySettings:
    result: GatewaySettings = make_settings(GatewaySettings)
    return result


@pytest.fixture
async def stack(
    make_settings: Any, settings: GatewaySettings, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, with its calls to analytics going to an in-process analytics app."""
    analytics = create_analytics(make_settings(AnalyticsSettings, billing_interval_seconds=0))
    gateway = create_gateway(settings)
    async with (
        analytics.router.lifespan_context(analytics),
        gateway.router.lifespan_context(gateway),
    ):
        state = gateway.state.veil
        await state.services.aclose()
        state.services = httpx.AsyncClient(transport=httpx.ASGITransport(app=analytics))
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def _change(
    client: httpx.AsyncClient, headers: dict[str, str], sub_id: str, plan_id: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/subscriptions/{sub_id}/change-plan", json={"plan_id": plan_id}, headers=headers
    )


async def _periods(sessions: Sessions, sub_id: str) -> list[SubscriptionPlanPeriod]:
    async with sessions() as session:
        rows = await session.scalars(
            select(SubscriptionPlanPeriod)
            .where(SubscriptionPlanPeriod.subscription_id == sub_id)
            .order_by(SubscriptionPlanPeriod.started_at)
        )
        return list(rows)


async def test_change_plan_takes_effect_now_and_keeps_the_history(
    stack: httpx.AsyncClient, redis: Redis, sessions: Sessions
) -> None:
    dev = await signup(stack)
    alice = await signup(stack, role="consumer")
    bob = await signup(stack, role="consumer")
    api, plans = await public_api(stack, dev, plans=(FREE, PRO, PRO_USD, OLD, TEAM))
    free, pro, pro_usd, old, team = (p["id"] for p in plans)
    subscribed = await subscribe(stack, alice, api["id"], free)
    sub_id = subscribed["subscription"]["id"]
    spare = (await stack.post(f"/api/v1/subscriptions/{sub_id}/keys", headers=alice)).json()
    assert (await stack.delete(f"/api/v1/keys/{spare['key']['id']}", headers=alice)).status_code

    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(KEYS_CHANNEL)
        upgraded = await _change(stack, alice, sub_id, pro)  # free USD -> paid EUR is fine
        assert upgraded.status_code == 200, upgraded.text
        assert upgraded.json()["plan"]["id"] == pro
        # Each live key is dropped from the data plane's cache; never "*", never a revoked key.
        assert await next_message(pubsub) == hash_key(subscribed["api_key"])
        assert await published_so_far(pubsub) == []
        await pubsub.unsubscribe(KEYS_CHANNEL)

    assert_error(await _change(stack, alice, sub_id, pro_usd), 409, "currency_mismatch")
    assert (await _change(stack, alice, sub_id, old)).status_code == 200
    assert (await _change(stack, alice, sub_id, team)).status_code == 200
    # "Old" was used, so removing it archives it rather than deleting the history's plan.
    removed = await stack.delete(f"/api/v1/apis/{api['id']}/plans/{old}", headers=dev)
    assert removed.status_code == 204
    listed = (await stack.get(f"/api/v1/apis/{api['id']}/plans", headers=dev)).json()["items"]
    assert next(p for p in listed if p["id"] == old)["archived_at"] is not None
    assert_error(await _change(stack, alice, sub_id, old), 409, "plan_archived")
    assert_error(await _change(stack, alice, sub_id, "nope"), 404, "plan_not_found")
    same = await _change(stack, alice, sub_id, team)
    assert (same.status_code, same.json()["plan"]["id"]) == (200, team)
    assert_error(await _change(stack, bob, sub_id, free), 404, "subscription_not_found")
    got = await stack.get(f"/api/v1/subscriptions/{sub_id}", headers=alice)
    assert got.json()["plan"]["id"] == team

    periods = await _periods(sessions, sub_id)
    assert [p.plan_id for p in periods] == [free, pro, old, team]
    for before, after in itertools.pairwise(periods):
        assert before.ended_at == after.started_at  # no gap, no overlap
    assert periods[-1].ended_at is None

    # This month's usage has one line per plan; the calls land on the plan in force.
    await calls(sessions, sub_id, datetime.now(UTC), 4)
    usage = (await stack.get(f"/api/v1/subscriptions/{sub_id}/usage", headers=alice)).json()
    assert [(line["plan_name"], line["calls"]) for line in usage["lines"]] == [
        ("Free", 0),
        ("Pro", 0),
        ("Old", 0),
        ("Team", 4),
    ]
    assert (usage["calls"], usage["amount_minor"], usage["currency"]) == (4, 1, "EUR")

    assert (await stack.delete(f"/api/v1/subscriptions/{sub_id}", headers=alice)).status_code
    ended = await _periods(sessions, sub_id)
    assert ended[-1].ended_at is not None
    assert_error(await _change(stack, alice, sub_id, pro), 409, "subscription_cancelled")


async def test_usage_reads_the_data_plane_counters(
    stack: httpx.AsyncClient, redis: Redis, sessions: Sessions
) -> None:
    dev = await signup(stack)
    alice = await signup(stack, role="consumer")
    api, (plan,) = await public_api(stack, dev, plans=(QUOTAS,))
    sub_id = (await subscribe(stack, alice, api["id"]))["subscription"]["id"]
    url = f"/api/v1/subscriptions/{sub_id}/usage"
    await calls(sessions, sub_id, datetime.now(UTC), 5)

    # No counter in Redis yet: the stored calls stand in.
    usage = (await stack.get(url, headers=alice)).json()
    assert (usage["calls"], usage["billable"], usage["amount_minor"]) == (5, 5, 10)  # 9.995
    assert usage["plan_id"] == plan["id"]
    assert usage["quota"]["daily"] == usage["quota"]["daily"] | {
        "quota": 100,
        "used": 5,
        "remaining": 95,
        "source": "stored",
    }
    assert usage["quota"]["monthly"]["remaining"] == 995

    # The data plane's limiter counts three calls: usage shows exactly what it enforces.
    limiter = Limiter(redis, fail_open=False)
    policy = Policy(rate_per_second=None, burst=None, daily_quota=100, monthly_quota=1000)
    for _ in range(3):
        assert (await limiter.check(sub_id, policy)).allowed
    usage = (await stack.get(url, headers=alice)).json()
    daily, monthly = usage["quota"]["daily"], usage["quota"]["monthly"]
    assert (daily["used"], daily["remaining"], daily["source"]) == (3, 97, "live")
    assert (monthly["used"], monthly["remaining"], monthly["source"]) == (3, 997, "live")
    assert datetime.fromisoformat(daily["resets_at"]) > datetime.now(UTC)
    assert usage["calls"] == 5  # billing counts stored calls, not the counters


async def test_invoices_are_their_subscriber_s_alone(
    stack: httpx.AsyncClient, sessions: Sessions
) -> None:
    dev = await signup(stack)
    alice = await signup(stack, role="consumer")
    bob = await signup(stack, role="consumer")
    api, _ = await public_api(stack, dev, plans=(METERED,))
    sub_id = (await subscribe(stack, alice, api["id"]))["subscription"]["id"]
    await calls(sessions, sub_id, datetime.now(UTC), 7)

    listed = (await stack.get("/api/v1/invoices", headers=alice)).json()["items"]
    assert len(listed) == 1
    invoice = listed[0]
    assert (invoice["status"], invoice["currency"], invoice["total_minor"]) == ("draft", "EUR", 14)
    assert invoice["period"] == datetime.now(UTC).strftime("%Y-%m")
    detail = (await stack.get(f"/api/v1/invoices/{invoice['id']}", headers=alice)).json()
    (line,) = detail["lines"]
    assert (line["plan_name"], line["calls"], line["amount_minor"]) == ("Metered", 7, 14)

    assert (await stack.get("/api/v1/invoices", headers=bob)).json()["items"] == []
    assert_error(
        await stack.get(f"/api/v1/invoices/{invoice['id']}", headers=bob), 404, "invoice_not_found"
    )
    assert_error(
        await stack.get(f"/api/v1/invoices/{invoice['id']}", headers=dev), 404, "invoice_not_found"
    )
    assert_error(
        await stack.get(f"/api/v1/subscriptions/{sub_id}/usage", headers=bob),
        404,
        "subscription_not_found",
    )
    assert_error(await stack.get("/api/v1/invoices/nope", headers=alice), 404, "invoice_not_found")
    for url in ("/api/v1/invoices", f"/api/v1/invoices/{invoice['id']}", "/api/v1/earnings"):
        assert_error(await stack.get(url), 401, "unauthorized")


async def test_earnings_and_admin_revenue(stack: httpx.AsyncClient, sessions: Sessions) -> None:
    dev = await signup(stack)
    other_dev = await signup(stack)
    alice = await signup(stack, role="consumer")
    admin = await signup(stack)
    me = (await stack.get("/api/v1/auth/me", headers=admin)).json()
    async with sessions() as session:
        await session.execute(update(User).where(User.id == me["id"]).values(role="admin"))
        await session.commit()
    api, _ = await public_api(stack, dev, plans=(METERED,))
    sub_id = (await subscribe(stack, alice, api["id"]))["subscription"]["id"]
    await calls(sessions, sub_id, datetime.now(UTC), 7)
    await stack.get("/api/v1/invoices", headers=alice)  # brings the draft up to date

    earned = await stack.get("/api/v1/earnings", headers=dev)
    assert earned.status_code == 200, earned.text
    body = earned.json()
    assert body["period"] == datetime.now(UTC).strftime("%Y-%m")
    assert body["fee_bps"] == 2000
    (row,) = body["items"]
    assert (row["api_id"], row["api_name"], row["currency"]) == (api["id"], api["name"], "EUR")
    assert (row["gross_minor"], row["fee_minor"], row["net_minor"]) == (14, 3, 11)  # fee 2.8
    assert row["draft_invoices"] == 1
    assert (await stack.get("/api/v1/earnings", headers=other_dev)).json()["items"] == []
    past = await stack.get("/api/v1/earnings", params={"period": "2020-01"}, headers=dev)
    assert past.json()["items"] == []
    assert_error(await stack.get("/api/v1/earnings", headers=alice), 403, "developer_only")
    bad = await stack.get("/api/v1/earnings", params={"period": "2026-13"}, headers=dev)
    assert bad.status_code == 422

    revenue = await stack.get("/api/v1/admin/revenue", headers=admin)
    assert revenue.status_code == 200, revenue.text
    (eur,) = revenue.json()["items"]
    assert (eur["currency"], eur["gross_minor"], eur["fee_minor"], eur["net_minor"]) == (
        "EUR",
        14,
        3,
        11,
    )
    assert_error(await stack.get("/api/v1/admin/revenue", headers=dev), 403, "admin_only")
    assert_error(await stack.get("/api/v1/admin/revenue", headers=alice), 403, "admin_only")


async def test_the_analytics_app_closes_months_by_itself(
    make_settings: Any, redis: Redis, sessions: Sessions
) -> None:
    now = datetime.now(UTC)
    last_month = previous_period(period_of(now))
    start, _ = period_bounds(last_month)
    where = await shop(sessions, {"name": "Metered", "price_per_1000_minor": 1000})
    sub_id = await subscribe_at(sessions, where, "Metered", start - timedelta(days=3))
    await calls(sessions, sub_id, start + timedelta(days=1), 3)
    settings = make_settings(
        AnalyticsSettings,
        billing_interval_seconds=0.05,
        billing_close_grace_seconds=0,
        raw_retention_days=0,  # the purge deletes every raw execution at once: invoices stay
    )
    app = create_analytics(settings)
    async with app.router.lifespan_context(app):
        for _ in range(200):
            found = await invoice_with_lines(sessions, sub_id, last_month)
            current = await invoice_with_lines(sessions, sub_id, period_of(now))
            async with sessions() as session:
                raw = await session.scalar(select(func.count()).select_from(Execution))
            done = found is not None and found[0].status == "final" and current is not None
            if done and raw == 0:
                break
            await asyncio.sleep(0.05)
    assert raw == 0
    assert found is not None
    assert (found[0].status, found[0].total_minor) == ("final", 3)
    assert current is not None
    assert current[0].status == "draft"
