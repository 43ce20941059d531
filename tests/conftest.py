"""Fixtures: real Redis and PostgreSQL servers, migrated databases, app clients."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sqlite3
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


TEMPLATE_DATABASE = "veil_template"


async def _connect_admin(admin_url: str) -> asyncpg.Connection:
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    for attempt in range(50):  # the server may still be starting up
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.CannotConnectNowError):
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def _create_database(connection: asyncpg.Connection, admin_url: str, template: str) -> str:
    name = f"veil_test_{secrets.token_hex(6)}"
    await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def _create_empty_pg_database(admin_url: str) -> str:
    """A new database on the test server with no schema (a copy of `template1`)."""
    connection = await _connect_admin(admin_url)
    try:
        return await _create_database(connection, admin_url, "template1")
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head for the whole run. Checkpointed and closed, so
    the WAL is folded into the file and no -wal/-shm is left: a byte copy is the
    whole database."""
    path = tmp_path_factory.mktemp("sqlite-template") / "veil.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()  # the last connection removes -wal and -shm
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the template is not a single file: {leftovers}"
    return path


@pytest.fixture(scope="session")
async def postgres_template(postgres_url: str) -> str:
    """One PostgreSQL database migrated to head for the whole run; each test's database
    is a copy of it. Marked a template that takes no connections, since CREATE DATABASE
    ... TEMPLATE fails while anyone is connected to the source."""
    url = await _create_empty_pg_database(postgres_url)
    name = url.rsplit("/", 1)[1]
    # Alembic's env runs its own event loop: keep it off the test's loop.
    await asyncio.to_thread(upgrade, url)
    connection = await _connect_admin(postgres_url)
    try:
        await connection.execute(f'ALTER DATABASE "{name}" RENAME TO "{TEMPLATE_DATABASE}"')
        await connection.execute(
            f'ALTER DATABASE "{TEMPLATE_DATABASE}" IS_TEMPLATE true ALLOW_CONNECTIONS false'
        )
    finally:
        await connection.close()
    return TEMPLATE_DATABASE


class PostgresCopies:
    """Copies of the template, one made ahead (the server makes the next test's while
    this test runs, on this run's event loop) and each dropped after its test, so the
    cluster holds a few databases rather than one per test. One admin connection."""

    def __init__(self, connection: asyncpg.Connection, admin_url: str, template: str) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()  # a connection runs one statement at a time
        self._admin_url = admin_url
        self._template = template
        self._next: asyncio.Task[str] | None = None

    async def _create(self) -> str:
        async with self._lock:
            return await _create_database(self._connection, self._admin_url, self._template)

    async def take(self) -> str:
        ready = self._next or asyncio.ensure_future(self._create())
        self._next = asyncio.ensure_future(self._create())
        return await ready

    async def drop(self, url: str) -> None:
        # FORCE: a pool the test did not dispose of would otherwise block the drop.
        async with self._lock:
            await self._connection.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    async def close(self) -> None:
        if self._next is not None:
            await self.drop(await self._next)
        await self._connection.close()


@pytest.fixture(scope="session")
async def postgres_copies(
    postgres_url: str, postgres_template: str
) -> AsyncIterator[PostgresCopies]:
    copies = PostgresCopies(await _connect_admin(postgres_url), postgres_url, postgres_template)
    yield copies
    await copies.close()


def copy_sqlite_template(template: Path, directory: Path) -> str:
    path = directory / "veil.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def sqlite_database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """This test's own SQLite database: a copy of the migrated template."""
    return copy_sqlite_template(sqlite_template, tmp_path)


@pytest.fixture
async def postgres_database_url(postgres_copies: PostgresCopies) -> AsyncIterator[str]:
    """This test's own PostgreSQL database: a copy of the migrated template."""
    url = await postgres_copies.take()
    yield url
    await postgres_copies.drop(url)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of this test's own: SQLite, then the same test again on
    PostgreSQL. Migrated once per run and copied per test (tests/integration/
    test_migrations.py migrates from scratch)."""
    url: str = request.getfixturevalue(f"{request.param}_database_url")
    return url


@pytest.fixture(scope="module")
def module_sqlite_database_url(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    return copy_sqlite_template(sqlite_template, tmp_path_factory.mktemp("module-db"))


@pytest.fixture(scope="module")
async def module_postgres_database_url(postgres_copies: PostgresCopies) -> AsyncIterator[str]:
    url = await postgres_copies.take()
    yield url
    await postgres_copies.drop(url)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(request: pytest.FixtureRequest) -> str:
    """One migrated database for the tests of one module on one backend: only for
    tests that leave nothing behind that another test could see (refused requests)."""
    url: str = request.getfixturevalue(f"module_{request.param}_database_url")
    return url


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all, for the tests of the migrations themselves."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'veil.db'}"
    return await _create_empty_pg_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def settings_maker(database_url: str, redis_url: str, data_dir: Path) -> Any:
    """Build any service's settings pointing at this database, Redis and data dir, all
    with the same fresh secrets."""
    jwt_secret = secrets.token_urlsafe(32)
    service_token = secrets.token_urlsafe(32)
    secrets_key = secrets.token_urlsafe(32)

    def make(cls: type[SettingsT], **overrides: Any) -> SettingsT:
        values: dict[str, Any] = {
            "jwt_secret": jwt_secret,
            "service_token": service_token,
            "secrets_key": secrets_key,
            "data_dir": data_dir,
            "database_url": database_url,
            "redis_url": redis_url,
        }
        if "bcrypt_rounds" in cls.model_fields:
            values["bcrypt_rounds"] = 4  # the cheapest bcrypt cost: tests sign up a lot
        values.update(overrides)
        return cls(**values)

    return make


@pytest.fixture
def make_settings(database_url: str, redis_url: str, tmp_path: Path) -> Any:
    """Build any service's settings pointing at this test's database, Redis and data dir."""
    return settings_maker(database_url, redis_url, tmp_path / "data")


async def asgi_client(app: Any, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process client to it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client
