"""Invalidations are published after their session commits, never for a rollback,
and a route change names only its own route (shared/invalidation.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy import text

from executor import repository
from shared import invalidation
from shared.db import create_engine, create_sessionmaker, session_scope
from shared.invalidation import (
    EVERYTHING,
    KEYS_CHANNEL,
    MAX_SINGLE_INVALIDATIONS,
    ROUTES_CHANNEL,
    AsyncPublisher,
    Invalidation,
    SyncPublisher,
    coalesced,
    invalidate,
    publish_on_commit,
)
from tests.integration.conftest import create_api, heard_so_far, signup


@pytest.fixture
async def heard(redis: Redis) -> AsyncIterator[PubSub]:
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(ROUTES_CHANNEL, KEYS_CHANNEL)
        for _ in range(2):  # the two subscribe confirmations
            await pubsub.get_message(timeout=5)
        yield pubsub


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_published_after_commit_and_never_for_a_rollback(
    sessions: Any, redis: Redis, heard: PubSub
) -> None:
    publisher = AsyncPublisher(redis)
    async with session_scope(sessions, publisher) as session:
        invalidate(session, invalidation.route("one"), invalidation.key("hash-1"))
        assert await heard_so_far(heard) == []  # nothing before the commit
    assert await heard_so_far(heard) == [(ROUTES_CHANNEL, "one"), (KEYS_CHANNEL, "hash-1")]

    async def failing(commit_first: bool) -> None:
        async with session_scope(sessions, publisher) as session:
            if commit_first:
                invalidate(session, invalidation.account("u1"))
                await session.commit()
            await session.execute(text("SELECT 1"))
            invalidate(session, invalidation.route("rolled-back"))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await failing(commit_first=False)
    assert await heard_so_far(heard) == []
    # Committed along the way, then the request failed: what was committed is told.
    with pytest.raises(RuntimeError):
        await failing(commit_first=True)
    assert await heard_so_far(heard) == [(KEYS_CHANNEL, "user:u1")]


async def test_sync_publisher_publishes_from_the_commit(
    sessions: Any, redis_url: str, heard: PubSub
) -> None:
    client = SyncRedis.from_url(redis_url)
    publish_on_commit(sessions, SyncPublisher(client))
    try:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
            invalidate(session, invalidation.route("sync"))
            await session.rollback()
            invalidate(session, invalidation.route("sync-2"))
            await session.commit()
            assert await heard_so_far(heard) == [(ROUTES_CHANNEL, "sync-2")]
    finally:
        client.close()


async def test_a_stop_drops_only_its_own_route(
    gateway: httpx.AsyncClient, sessions: Any, redis_url: str, heard: PubSub
) -> None:
    headers = await signup(gateway)
    api = await create_api(gateway, headers, "Only Mine")
    client = SyncRedis.from_url(redis_url)
    publish_on_commit(sessions, SyncPublisher(client))
    try:
        async with sessions() as session:
            await repository.clear_route(session, api["id"])  # what the stop job does
            await session.commit()
        assert await heard_so_far(heard) == [(ROUTES_CHANNEL, api["slug"])]
    finally:
        client.close()


def test_coalesced_drops_repeats_and_folds_many_into_everything() -> None:
    items = [invalidation.route("a"), invalidation.route("a"), invalidation.key("k")]
    assert coalesced(items) == [invalidation.route("a"), invalidation.key("k")]
    many = [invalidation.key(f"k{i}") for i in range(MAX_SINGLE_INVALIDATIONS + 1)]
    assert coalesced([invalidation.route("a"), *many]) == [
        invalidation.route("a"),
        Invalidation(KEYS_CHANNEL, EVERYTHING),
    ]
    assert coalesced([invalidation.route("a"), invalidation.route(EVERYTHING)]) == [
        Invalidation(ROUTES_CHANNEL, EVERYTHING)
    ]
