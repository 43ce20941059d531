"""Async SQLAlchemy engine and sessions (SQLite via aiosqlite, PostgreSQL via asyncpg).

Every wait on the database is bounded (DatabaseTimeouts): connecting, each
statement, and checking a connection out of the pool. Past a bound, or when the
database cannot be reached at all, the error becomes DatabaseUnavailable (503
`database_unavailable` with Retry-After) at the one place each service renders
errors, rather than a request that hangs until its client gives up. Pooled
connections are pinged before use, so after an outage the pool heals by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.errors import ServiceUnavailable
from shared.invalidation import AsyncPublisher, take_committed

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"

    def __init__(self, message: str = "The database is not answering; try again shortly.") -> None:
        super().__init__(message, headers={"Retry-After": "5"})


@dataclass(frozen=True)
class DatabaseTimeouts:
    connect_seconds: float = 5.0
    statement_seconds: float = 30.0
    pool_seconds: float = 5.0


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or did not answer in time
    (not that a statement was wrong: those stay errors of their own)."""
    if isinstance(exc, (PoolTimeout, OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or is_unavailable(exc.orig or Exception())
    # asyncpg's own timeouts and refused connections reach us unwrapped: count them
    # only when they come from the database driver, not from any other wait.
    return isinstance(exc, (TimeoutError, OSError)) and _raised_by_driver(exc)


_DRIVERS = ("asyncpg", "aiosqlite", "sqlalchemy")


def _raised_by_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DRIVERS):
            return True
        traceback = traceback.tb_next
    return False


def database_call(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """For code outside a request (the data plane's loads): unavailability as
    DatabaseUnavailable."""

    @wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise

    return call


async def database_ready(engine: AsyncEngine, within_seconds: float = 2.0) -> bool:
    """One `SELECT 1` within `within_seconds`: for readiness checks."""
    try:
        async with asyncio.timeout(within_seconds), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        if is_unavailable(exc):
            return False
        raise
    return True


def create_engine(url: str, timeouts: DatabaseTimeouts | None = None) -> AsyncEngine:
    timeouts = timeouts or DatabaseTimeouts()
    kwargs: dict[str, Any] = {"pool_timeout": timeouts.pool_seconds}
    if url.startswith("sqlite"):
        # Several processes share one SQLite file: wait for locks rather than fail.
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {
            "timeout": timeouts.connect_seconds,  # the TCP and start-up handshake
            "command_timeout": timeouts.statement_seconds,  # each statement, client side
            # ... and server side, so an abandoned statement does not run on.
            "server_settings": {"statement_timeout": str(int(timeouts.statement_seconds * 1000))},
        }
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (stats, status polls) run while a writer commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(
    maker: async_sessionmaker[AsyncSession], publisher: AsyncPublisher | None = None
) -> AsyncIterator[AsyncSession]:
    """One session per unit of work: commit on success, roll back on any error.

    With a publisher, what the session committed to invalidate (shared/invalidation.py,
    also from a commit of its own along the way) is published after the last commit.
    """
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            if publisher is not None:
                await publisher.publish(take_committed(session))
