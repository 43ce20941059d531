"""Password guessing is throttled per account and per address, without telling
which accounts exist, and a spoofed X-Forwarded-For does not get around it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.app import create_app
from shared.settings import GatewaySettings
from tests.conftest import asgi_client
from tests.integration.conftest import assert_error, signup

LOGIN = "/api/v1/auth/login"
LIMITS = {
    "login_free_failures_per_account": 3,
    "login_free_failures_per_address": 8,
    "login_backoff_base_seconds": 0.3,
}


@pytest.fixture
async def strict(make_settings: Any, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    settings: GatewaySettings = make_settings(GatewaySettings, **LIMITS)
    async for client in asgi_client(create_app(settings)):
        yield client


async def attempt(client: httpx.AsyncClient, email: str, password: str, **headers: str) -> int:
    answer = await client.post(LOGIN, json={"email": email, "password": password}, headers=headers)
    if answer.status_code == 429:
        assert_error(answer, 429, "too_many_login_attempts")
        assert int(answer.headers["retry-after"]) >= 1
    return answer.status_code


async def test_an_account_locks_after_its_free_failures_and_the_lock_doubles(
    strict: httpx.AsyncClient,
) -> None:
    await signup(strict, email="ada@example.com")
    assert [await attempt(strict, "ada@example.com", "wrong") for _ in range(3)] == [401] * 3
    assert await attempt(strict, "ada@example.com", "wrong") == 401  # the 4th: locks 0.3 s
    # Locked: even the right password waits, and no password is checked meanwhile.
    assert await attempt(strict, "ADA@example.com ", "correct horse") == 429
    await asyncio.sleep(0.4)
    assert await attempt(strict, "ada@example.com", "wrong") == 401  # the 5th: locks 0.6 s
    await asyncio.sleep(0.4)
    assert await attempt(strict, "ada@example.com", "correct horse") == 429  # still locked
    await asyncio.sleep(0.3)
    assert await attempt(strict, "ada@example.com", "correct horse") == 200
    # A good sign-in clears the account's count.
    assert [await attempt(strict, "ada@example.com", "wrong") for _ in range(3)] == [401] * 3


async def test_unknown_accounts_answer_exactly_like_known_ones(strict: httpx.AsyncClient) -> None:
    await signup(strict, email="known@example.com")
    known = [await attempt(strict, "known@example.com", "wrong") for _ in range(5)]
    unknown = [await attempt(strict, "ghost@example.com", "wrong") for _ in range(5)]
    assert known == unknown == [401, 401, 401, 401, 429]


async def test_an_address_locks_across_accounts_and_spoofed_headers_do_not_help(
    strict: httpx.AsyncClient,
) -> None:
    # One failure each on many accounts: the account limits never trip, the address's does,
    # however the guesser varies X-Forwarded-For (no trusted header is configured).
    codes = [
        await attempt(strict, f"user{i}@example.com", "wrong", **{"X-Forwarded-For": f"10.0.0.{i}"})
        for i in range(10)
    ]
    assert codes == [401] * 9 + [429]
    await signup(strict, email="fresh@example.com")
    assert await attempt(strict, "fresh@example.com", "correct horse") == 429


async def test_a_trusted_proxy_header_names_the_caller(make_settings: Any, redis: Redis) -> None:
    settings: GatewaySettings = make_settings(
        GatewaySettings, client_address_header="X-Forwarded-For", **LIMITS
    )
    async for client in asgi_client(create_app(settings)):
        # The balancer appends the caller's address: the rightmost entry counts.
        guesser = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
        codes = [await attempt(client, f"u{i}@example.com", "wrong", **guesser) for i in range(10)]
        assert codes[-1] == 429
        await signup(client, email="someone@example.com")
        other = {"X-Forwarded-For": "203.0.113.10"}
        assert await attempt(client, "someone@example.com", "correct horse", **other) == 200


async def test_parallel_guesses_are_counted_without_errors(strict: httpx.AsyncClient) -> None:
    await signup(strict, email="busy@example.com")
    codes = await asyncio.gather(*(attempt(strict, "busy@example.com", "wrong") for _ in range(12)))
    counted = Counter(codes)
    assert set(counted) <= {401, 429}, counted
    assert counted[401] >= 3
    assert await attempt(strict, "busy@example.com", "correct horse") == 429
