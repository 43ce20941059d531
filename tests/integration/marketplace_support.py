"""Helpers shared by the marketplace, plans and keys tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio.client import PubSub
from sqlalchemy import select

from shared.db import create_engine, create_sessionmaker
from shared.models import ApiKey
from shared.settings import GatewaySettings
from tests.integration.conftest import create_api

FREE = {"name": "Free", "included_calls_per_month": 1000, "rate_per_second": 5, "burst": 10}
PRO = {"name": "Pro", "price_per_1000_minor": 250, "currency": "EUR", "monthly_quota": 10**6}


async def public_api(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    name: str = "Weather Now",
    plans: tuple[dict[str, Any], ...] = (FREE,),
    visibility: str = "public",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An API with a description, the given visibility and plans."""
    api = await create_api(client, headers, name=name)
    patched = await client.patch(
        f"/api/v1/apis/{api['id']}",
        json={"description": f"Forecasts by {name}", "visibility": visibility},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    created = []
    for plan in plans:
        response = await client.post(f"/api/v1/apis/{api['id']}/plans", json=plan, headers=headers)
        assert response.status_code == 201, response.text
        created.append(response.json())
    return patched.json(), created


async def subscribe(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    api_id: str,
    plan_id: str | None = None,
) -> dict[str, Any]:
    body = {} if plan_id is None else {"plan_id": plan_id}
    response = await client.post(
        f"/api/v1/marketplace/apis/{api_id}/subscribe", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def stored_keys(settings: GatewaySettings) -> list[ApiKey]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.execute(select(ApiKey))).scalars().all())
    finally:
        await engine.dispose()


async def next_message(pubsub: PubSub, within: float = 2.0) -> str | None:
    """The next published message on a subscribed channel, or None after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None and message["type"] == "message":
            data = message["data"]
            return data.decode() if isinstance(data, bytes) else str(data)
    return None
