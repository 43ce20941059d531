"""The data plane's loading cache: one load per key, stale-while-refresh, no lost invalidation."""

from __future__ import annotations

import asyncio

import pytest

from gateway.dataplane.cache import MISSING, LoadingCache


class Source:
    """A loader over a dict, with a gate to hold loads in flight."""

    def __init__(self) -> None:
        self.rows: dict[str, int | None] = {"a": 1}
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self._reads: asyncio.Queue[None] = asyncio.Queue()
        self._seen = 0

    async def load(self, key: str) -> int | None:
        self.calls += 1
        self._reads.put_nowait(None)
        row = self.rows.get(key)  # read before waiting: what a query in flight saw
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("database down")
        return row

    async def started(self, calls: int) -> None:
        """Until `calls` loads have read their row (they then wait at the gate)."""
        while self._seen < calls:
            await self._reads.get()
            self._seen += 1


async def test_concurrent_misses_share_one_load() -> None:
    source = Source()
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=60)
    source.gate.clear()
    waiting = [asyncio.create_task(cache.get("a")) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    assert source.calls == 1
    assert await cache.get("a") == 1
    assert source.calls == 1


async def test_peek_answers_cached_values_without_loading() -> None:
    source = Source()
    source.rows["gone"] = None
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=60)
    assert cache.peek("a") is MISSING
    assert source.calls == 0  # a miss does not start a load: `get` does
    assert await cache.get("a") == 1
    assert await cache.get("gone") is None
    assert (cache.peek("a"), cache.peek("gone")) == (1, None)  # a cached None is an answer
    cache.invalidate("a")
    assert cache.peek("a") is MISSING


async def test_expired_entry_is_answered_while_one_refresh_runs() -> None:
    source = Source()
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=0)
    assert await cache.get("a") == 1
    source.rows["a"] = 2
    source.gate.clear()
    # Expired: answered at once from the old entry, and only one refresh starts.
    assert [await cache.get("a") for _ in range(10)] == [1] * 10
    await source.started(2)
    await asyncio.sleep(0.01)
    assert source.calls == 2
    source.gate.set()
    await asyncio.sleep(0.01)
    assert await cache.get("a") == 2


async def test_a_load_started_before_invalidation_is_not_stored() -> None:
    """A key revoked while its lookup is in flight must not be cached as live."""
    source = Source()
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=60)
    source.gate.clear()
    in_flight = asyncio.create_task(cache.get("a"))
    await source.started(1)
    source.rows.pop("a")  # the revocation commits...
    cache.invalidate("a")  # ...and its message arrives while the old read is in flight
    source.gate.set()
    assert await in_flight == 1  # that caller raced the revocation and may pass once
    assert await cache.get("a") is None  # nobody after it does
    assert source.calls == 2


async def test_invalidating_another_key_does_not_strand_a_load() -> None:
    source = Source()
    source.rows["b"] = 5
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=60)
    source.gate.clear()
    in_flight = asyncio.create_task(cache.get("a"))
    await source.started(1)
    cache.invalidate("b")
    source.gate.set()
    assert await in_flight == 1
    source.rows["a"] = 3
    assert await cache.get("a") == 3  # loaded again, not the finished future's old value


async def test_a_failed_load_is_raised_and_not_cached() -> None:
    source = Source()
    source.fail = True
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=60)
    with pytest.raises(RuntimeError, match="database down"):
        await cache.get("a")
    source.fail = False
    assert await cache.get("a") == 1


async def test_a_failed_refresh_drops_the_entry() -> None:
    source = Source()
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=0)
    assert await cache.get("a") == 1
    source.fail = True
    assert await cache.get("a") == 1  # stale answer, refresh starts and fails
    await asyncio.sleep(0.01)
    assert len(cache) == 0
    with pytest.raises(RuntimeError):
        await cache.get("a")


async def test_a_cancelled_caller_does_not_cancel_the_shared_load() -> None:
    source = Source()
    cache: LoadingCache[str, int | None] = LoadingCache(source.load, ttl_seconds=60)
    source.gate.clear()
    first = asyncio.create_task(cache.get("a"))
    second = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0)
    first.cancel()
    source.gate.set()
    assert await second == 1
    assert source.calls == 1
