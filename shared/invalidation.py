"""Telling the data plane what changed: invalidations collected by the session,
published after its commit.

Every data-plane worker caches routes (per API slug), API keys (per key hash)
and accounts (per user id), and drops an entry when told on a Redis channel.
Code that changes one of those says so on its database session
(`invalidate(session, route(slug))`); nothing is sent then. When the session
commits, what it collected is published; when it rolls back, it is dropped. So
a worker never reloads before the change is visible (it would cache the old
state for a whole TTL), a failed request announces nothing, and no caller has
to remember to publish after its commit.

Two publishers, one per kind of Redis client: `AsyncPublisher` for the control
plane, whose session dependency (shared/db.py `session_scope`) publishes after
the commit and before the response goes out; `SyncPublisher` for the executor,
attached to its sessionmaker (`publish_on_commit`), which publishes from the
commit itself. Publishing is best effort: when Redis is down, the workers' short
cache TTLs take over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("veil.invalidation")

ROUTES_CHANNEL = "veil:routes"  # message: an API slug, or "*" for every route
# API keys (revoke, rotate, subscription or plan change): a key hash, or "*" for
# all keys; an account's suspension or its lifting: "user:<id>" (its bearer
# tokens on the data plane). Both go to the key caches' channel.
KEYS_CHANNEL = "veil:keys"
USER_INVALIDATION_PREFIX = "user:"
EVERYTHING = "*"
# Past this many entries of one channel in one commit, one "*" replaces them:
# cheaper for every worker than thousands of single drops.
MAX_SINGLE_INVALIDATIONS = 200

_PENDING = "veil.invalidations.pending"
_COMMITTED = "veil.invalidations.committed"
_PUBLISHER = "veil.invalidations.publisher"


@dataclass(frozen=True)
class Invalidation:
    channel: str
    message: str


def route(slug: str) -> Invalidation:
    """The cached route of the API `slug` ("*": every route)."""
    return Invalidation(ROUTES_CHANNEL, slug)


def key(key_hash: str) -> Invalidation:
    """The cached API key `key_hash` ("*": every key)."""
    return Invalidation(KEYS_CHANNEL, key_hash)


def account(user_id: str) -> Invalidation:
    """The cached account of `user_id` (suspended, lifted, role changed)."""
    return Invalidation(KEYS_CHANNEL, USER_INVALIDATION_PREFIX + user_id)


def invalidate(session: AsyncSession | Session, *items: Invalidation) -> None:
    """Publish `items` once the session's transaction commits (never if it rolls back)."""
    session.info.setdefault(_PENDING, []).extend(items)


def take_committed(session: AsyncSession | Session) -> list[Invalidation]:
    """What the session committed and has not published yet (and forget it)."""
    committed: list[Invalidation] = session.info.pop(_COMMITTED, [])
    return committed


def coalesced(items: Iterable[Invalidation]) -> list[Invalidation]:
    """`items` without repeats, in order; a channel with more than
    MAX_SINGLE_INVALIDATIONS entries (or with "*") becomes one "*"."""
    per_channel: dict[str, dict[str, None]] = {}
    for item in items:
        per_channel.setdefault(item.channel, {})[item.message] = None
    out: list[Invalidation] = []
    for channel, messages in per_channel.items():
        if EVERYTHING in messages or len(messages) > MAX_SINGLE_INVALIDATIONS:
            out.append(Invalidation(channel, EVERYTHING))
        else:
            out.extend(Invalidation(channel, m) for m in messages)
    return out


class AsyncPublisher:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, items: Iterable[Invalidation]) -> None:
        for item in coalesced(items):
            try:
                await self._redis.publish(item.channel, item.message)
            except Exception as exc:
                _warn(item, exc)


class SyncPublisher:
    def __init__(self, redis: SyncRedis) -> None:
        self._redis = redis

    def publish(self, items: Iterable[Invalidation]) -> None:
        for item in coalesced(items):
            try:
                self._redis.publish(item.channel, item.message)
            except Exception as exc:
                _warn(item, exc)


def publish_on_commit(maker: async_sessionmaker[AsyncSession], publisher: SyncPublisher) -> None:
    """Sessions of `maker` publish what they collected from the commit itself."""
    info: dict[str, Any] = dict(maker.kw.get("info") or {})
    info[_PUBLISHER] = publisher
    maker.configure(info=info)


def _warn(item: Invalidation, exc: Exception) -> None:
    log.warning("could not publish %s %s: %s", item.channel, item.message[:20], exc)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    publisher = session.info.get(_PUBLISHER)
    if isinstance(publisher, SyncPublisher):
        publisher.publish(pending)
    else:
        session.info.setdefault(_COMMITTED, []).extend(pending)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # The whole transaction, not a savepoint: what it changed is gone, so is the news.
    # (A savepoint's own invalidations stay: at worst a cache reloads for nothing.)
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
