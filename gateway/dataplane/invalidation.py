"""Following a Redis pub/sub channel that tells data-plane caches what to drop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger("veil.dataplane.invalidation")


async def follow(redis: Redis, channel: str, drop: Callable[[str | None], None]) -> None:
    """Call `drop(message)` for each message on `channel` until cancelled.

    `drop(None)` (drop everything) on every (re)subscription: anything cached
    while the feed was down may have missed a message. Reconnects when Redis drops.
    """
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                drop(None)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        drop(None if text == "*" else text)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s feed lost (%s); retrying", channel, exc)
            drop(None)
            await asyncio.sleep(1.0)
