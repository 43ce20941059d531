"""Reads execution events from the Redis stream and stores each exactly once.

At-least-once delivery (a consumer group; entries are acknowledged only after
the database commit) plus an idempotent insert keyed on the event id gives
exactly-once storage; the rollups are written in the same transaction, and
only for the events that insert actually stored. Entries left pending by this
consumer are read again first on start-up; entries left pending by a consumer
that is gone for good are claimed after `claim_idle_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analytics.ingest.entries import line_of
from analytics.ingest.repository import Batch, prepare_in_turns, store_batch
from shared.events import EVENT_FIELD
from shared.resp import bulk, pack

log = logging.getLogger("veil.analytics.ingest")
_FIELD = EVENT_FIELD.encode()


def tune_gc(threshold: int) -> tuple[int, int, int]:
    """Run the cyclic garbage collector after `threshold` allocations instead of 700.

    A batch read from the stream is hundreds of thousands of small objects alive at
    once (thousands of entries and what the fold keeps of them); with CPython's
    default the collector walks them over and over, which once doubled the CPU of
    reading and decoding an entry (docs/benchmarks.md). Ingestion makes no
    reference cycles; the little cyclic garbage the process makes is collected later,
    not never (the older generations keep CPython's ratios). What start-up allocated
    is frozen out of the collections. Returns the thresholds it replaced (0: leaves
    them alone).
    """
    previous = gc.get_threshold()
    if threshold > 0:
        gc.freeze()
        gc.set_threshold(threshold, previous[1], previous[2])
    return previous


def restore_gc(previous: tuple[int, int, int]) -> None:
    """Undo `tune_gc` (at shutdown: no collection here, the process is ending or the
    next collection comes with the thresholds restored)."""
    gc.set_threshold(*previous)
    gc.unfreeze()


class EventConsumer:
    def __init__(
        self,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        stream: str,
        group: str,
        consumer: str,
        batch_size: int,
        claim_idle_ms: int = 60_000,
        stores: int | None = None,
    ) -> None:
        self.redis = redis
        self.sessions = sessions
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        if stores is None:  # SQLite has one writer at a time: a second store would wait
            bind = getattr(sessions, "kw", {}).get("bind")
            stores = 2 if bind is not None and bind.dialect.name == "postgresql" else 1
        self.stores = stores  # stores in flight at most (run_forever)
        self.stored = 0  # events this consumer stored (redeliveries not counted)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run_forever(self, block_ms: int = 200, min_interval_ms: int = 0) -> None:
        """Block at most `block_ms` per read: a new event is stored well within a second.

        After a read that was not a full batch, the next starts `min_interval_ms` after
        it at the earliest (0: at once). A store costs much the same for a few dozen
        events as for a few hundred (its transaction, COPY, rollup upserts, commit and
        acknowledgement): read as they come, the data plane's small writes every
        ~10 ms cost several times the CPU per event. Meanwhile the events wait in the
        stream and the next read takes them all. A full batch is followed by the next
        read at once: a backlog drains at full speed.

        The next batch is read, decoded and rolled up while the database stores the
        ones before: up to `stores` stores in flight, each in its own transaction and
        acknowledged after its commit. Two, because a store is mostly PostgreSQL's
        work on one core (its COPY, then the rollups): with one in flight, the second
        core waited for it half the time once the consumer's own share had shrunk.
        Concurrent stores add to the same rollup rows in the same (sorted) order.
        """
        while True:
            storing: deque[asyncio.Task[None]] = deque()
            try:
                await self.ensure_group()
                while await self.drain(pending_first=True):
                    pass
                reads = 0
                this = asyncio.current_task()
                loop = asyncio.get_running_loop()
                next_read = loop.time()  # the earliest time of the next read
                while True:
                    if this is not None and this.cancelling():
                        # A cancellation a client library swallowed mid-call: honour it.
                        raise asyncio.CancelledError
                    if reads % 1000 == 0:
                        while storing:
                            await asyncio.shield(storing.popleft())
                        await self.claim_abandoned()
                    reads += 1
                    wait = next_read - loop.time()
                    if wait > 0:  # the stores in flight go on meanwhile
                        await asyncio.sleep(wait)
                    started = loop.time()
                    entries = await self.read(block_ms=block_ms)
                    if len(entries) < self.batch_size:
                        next_read = started + min_interval_ms / 1000
                    batch = await self.prepare(entries) if entries else None
                    while storing and (len(storing) >= self.stores or not entries):
                        # Shielded: a cancellation is for this loop, even when it comes
                        # while a store (which may not pass it on) is being awaited.
                        await asyncio.shield(storing.popleft())
                    if entries:
                        storing.append(asyncio.create_task(self.store(entries, batch)))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("event stream unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("event ingestion failed; retrying")
                await asyncio.sleep(1.0)
            finally:
                if storing:
                    # Let the stores in flight finish (commit and acknowledge); what
                    # they did not acknowledge is read again, pending first.
                    with contextlib.suppress(BaseException):
                        await asyncio.wait(storing)

    async def _command(self, packed: bytes) -> Any:
        """Send one packed command and return its reply as the protocol parser gives it.

        redis-py's reply callbacks turn every XREADGROUP entry into a tuple and a dict,
        and its packing checks and encodes each of XACK's thousands of ids: together
        about a fifth of the consumer's time per event. Wire format 1 entries are read
        as they come, and ids are packed here.
        """
        pool = self.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            # read_response disconnects the connection on any error, cancellation too.
            await connection.send_packed_command(packed)
            return await connection.read_response()
        finally:
            await pool.release(connection)

    async def read(self, *, pending_first: bool = False, block_ms: int | None = None) -> list[Any]:
        """One batch: this consumer's pending entries when `pending_first`, else new ones.
        Entries are (id, [field, value, …]), or (id, None) for one trimmed away."""
        args: list[bytes | str | int] = [b"XREADGROUP", b"GROUP", self.group, self.consumer]
        args += [b"COUNT", self.batch_size]
        if not pending_first and block_ms is not None:
            args += [b"BLOCK", block_ms]
        args += [b"STREAMS", self.stream, b"0" if pending_first else b">"]
        response: Any = await self._command(pack(*args))
        if not response:
            return []
        if isinstance(response, dict):  # RESP3: a map of stream to entries
            response = list(response.items())
        entries: list[Any] = response[0][1]
        return entries

    async def ack(self, ids: list[Any]) -> None:
        """Acknowledge entries (after their commit)."""
        head = b"*%d\r\n" % (len(ids) + 3) + bulk(b"XACK") + bulk(self.stream)
        head += bulk(self.group)
        try:
            packed = head + b"".join([b"$%d\r\n%s\r\n" % (len(i), i) for i in ids])
        except TypeError:  # ids as str: a client that decodes replies
            packed = pack(b"XACK", self.stream, self.group, *ids)
        await self._command(packed)

    async def drain(self, *, pending_first: bool = False, block_ms: int | None = None) -> int:
        """Read one batch (pending entries when `pending_first`), store it, acknowledge it."""
        entries = await self.read(pending_first=pending_first, block_ms=block_ms)
        if entries:
            await self.store(entries)
        return len(entries)

    async def claim_abandoned(self) -> int:
        """Take over and store entries another consumer read but never acknowledged (it died)."""
        claimed = 0
        start = "0-0"
        while True:
            response: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=start,
                count=self.batch_size,
            )
            start, entries = response[0], response[1]
            entries = [entry for entry in entries if entry[1] is not None]  # trimmed away
            if entries:
                await self.store(entries)
                claimed += len(entries)
            if start in (b"0-0", "0-0"):
                return claimed

    async def prepare(self, entries: list[Any]) -> Batch:
        """The entries' events as wire-format lines, with their rollups (CPU only, no I/O).

        Entries' fields come as a list (`read`) or a dict (redis-py's XAUTOCLAIM)."""
        try:
            lines = [f[1] for _, f in entries if f[0] == _FIELD and len(f) == 2]
        except (KeyError, TypeError, IndexError):
            lines = []
        if len(lines) != len(entries):  # a dict, an entry that is no event, or trimmed away
            lines = []
            for entry_id, fields in entries:
                if not fields:  # trimmed from the stream while pending: nothing to store
                    continue
                try:
                    if isinstance(fields, list):
                        fields = dict(zip(fields[::2], fields[1::2], strict=True))
                    lines.append(line_of(fields))
                except ValueError as exc:
                    log.error("dropping malformed event %s: %s", entry_id, exc)
        return await prepare_in_turns(lines)

    async def store(self, entries: list[Any], batch: Batch | None = None) -> None:
        """Store the entries (`batch`: as prepared already) in one transaction, then
        acknowledge them."""
        if batch is None:
            batch = await self.prepare(entries)
        async with self.sessions() as session:
            inserted = await store_batch(session, batch)
            await session.commit()
        await self.ack([entry_id for entry_id, _ in entries])
        self.stored += inserted
