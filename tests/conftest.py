"""Fixtures: real Redis and PostgreSQL servers, migrated databases, app clients."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from shared.migrate import upgrade
from shared.settings import CommonSettings
from tests.services import postgres_server, redis_server

SettingsT = TypeVar("SettingsT", bound=CommonSettings)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


async def _create_pg_database(admin_url: str) -> str:
    name = f"veil_test_{secrets.token_hex(6)}"
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    for attempt in range(50):  # the server may still be starting up
        try:
            connection = await asyncpg.connect(dsn)
            break
        except (OSError, asyncpg.CannotConnectNowError):
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated database: SQLite, then the same test again on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'veil.db'}"
    else:
        url = await _create_pg_database(request.getfixturevalue("postgres_url"))
    # Alembic's env runs its own event loop: keep it off the test's loop.
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def make_settings(database_url: str, redis_url: str, tmp_path: Path) -> Any:
    """Build any service's settings pointing at this test's database, Redis and data dir."""
    jwt_secret = secrets.token_urlsafe(32)
    service_token = secrets.token_urlsafe(32)
    secrets_key = secrets.token_urlsafe(32)

    def make(cls: type[SettingsT], **overrides: Any) -> SettingsT:
        values: dict[str, Any] = {
            "jwt_secret": jwt_secret,
            "service_token": service_token,
            "secrets_key": secrets_key,
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "redis_url": redis_url,
        }
        if "bcrypt_rounds" in cls.model_fields:
            values["bcrypt_rounds"] = 4  # the cheapest bcrypt cost: tests sign up a lot
        values.update(overrides)
        return cls(**values)

    return make


async def asgi_client(app: Any, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client to it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client
