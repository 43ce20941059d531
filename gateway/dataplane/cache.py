"""A small in-memory loading cache for the data plane's routes and keys.

Three things a plain dict with expiry times gets wrong under load:

- A stampede: when an entry expires, every call in flight for it ran its own
  database query (50 connections → 50 identical queries every TTL). Here one
  load runs per key; the others await it.
- Latency spikes at expiry: an expired entry is still answered once more while
  one background load refreshes it (the TTL is a safety net; changes arrive by
  pub/sub and drop the entry at once, so staleness is not widened by this).
- An outage: when the database does not answer a refresh, the entry it had is
  kept and answered on (retried every second) instead of dropped, so calls whose
  route and key were known keep working; unknown ones get 503
  `database_unavailable` at once (shared/db.py bounds the wait).
- A lost invalidation: a load that started before `invalidate()` may have read
  the old row (a key revoked a moment later); its result must not be stored.
  Every invalidation bumps a generation, and a load only stores what it read
  under the generation it started in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from shared.db import DatabaseUnavailable

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger("veil.dataplane.cache")
_RETRY_SECONDS = 1.0


class Missing:
    """What `peek` answers when nothing is cached (None is a cacheable value)."""


MISSING = Missing()


class LoadingCache(Generic[K, V]):
    def __init__(
        self,
        load: Callable[[K], Awaitable[V]],
        ttl_seconds: float,
        max_entries: int = 100_000,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0

    def peek(self, key: K) -> V | Missing:
        """The cached value without awaiting anything (an expired one is answered
        while it refreshes behind), or MISSING: the hot path's way in, a coroutine
        less per call than `get`."""
        hit = self._entries.get(key)
        if hit is None:
            return MISSING
        if hit[0] <= time.monotonic() and key not in self._loading:
            self._start_load(key).add_done_callback(_quiet)  # refresh behind the answer
        return hit[1]

    async def get(self, key: K) -> V:
        hit = self.peek(key)
        if not isinstance(hit, Missing):
            return hit
        pending = self._loading.get(key) or self._start_load(key)
        return await asyncio.shield(pending)  # one caller cancelled must not cancel the others

    def invalidate(self, key: K | None = None) -> None:
        """Drop one entry (None: all); loads already running will not store theirs."""
        self._generation += 1
        if key is None:
            self._entries.clear()
            self._loading.clear()
        else:
            self._entries.pop(key, None)
            self._loading.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _start_load(self, key: K) -> asyncio.Future[V]:
        task = asyncio.ensure_future(self._load_and_store(key, self._generation))
        self._loading[key] = task
        return task

    async def _load_and_store(self, key: K, generation: int) -> V:
        try:
            value = await self._load(key)
        except DatabaseUnavailable:
            # The database is down: what was known goes on being answered (stale, as
            # changes still arrive by pub/sub), asked again a second later.
            hit = self._entries.get(key)
            if generation == self._generation and hit is not None:
                self._entries[key] = (time.monotonic() + _RETRY_SECONDS, hit[1])
            raise
        except BaseException:
            if generation == self._generation:
                self._entries.pop(key, None)  # a failed refresh: the next call loads afresh
            raise
        finally:
            if self._loading.get(key) is asyncio.current_task():
                del self._loading[key]
        if generation == self._generation:
            if len(self._entries) >= self._max and key not in self._entries:
                self._entries.clear()  # crude but bounded; a refill costs one query per key
            self._entries[key] = (time.monotonic() + self._ttl, value)
        return value


def _quiet(future: asyncio.Future[Any]) -> None:
    """A background refresh that failed: the entry is gone, the next call reports it."""
    if not future.cancelled():
        with contextlib.suppress(BaseException):
            if (exc := future.exception()) is not None:
                log.warning("cache refresh failed: %s", exc)
