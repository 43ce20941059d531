"""Server-sent events for one deployment: its build log and status, live.

Reads the deployment's Redis stream (written by the executor) from the start,
so a client that connects late still gets every line; ends with an `end`
event carrying the final status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.events import build_feed_stream
from shared.models import Deployment
from shared.models.deployment import SETTLED_STATUSES

KEEPALIVE_MS = 15_000


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _decode(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}


def replay_from_row(deployment: Deployment) -> list[bytes]:
    """When the live feed has expired: what the deployment row still knows."""
    events = [sse("log", {"line": line}) for line in (deployment.log_tail or "").splitlines()]
    end: dict[str, Any] = {"status": deployment.status}
    if deployment.error:
        end["error"] = deployment.error
    events.append(sse("end", end))
    return events


async def follow(redis: Redis, deployment: Deployment) -> AsyncIterator[bytes]:
    key = build_feed_stream(deployment.id)
    if deployment.status in SETTLED_STATUSES and not await redis.exists(key):
        for event in replay_from_row(deployment):
            yield event
        return
    yield sse("status", {"status": deployment.status})
    last = "0-0"
    while True:
        response: Any = await redis.xread({key: last}, count=500, block=KEEPALIVE_MS)
        if not response:
            yield b": keep-alive\n\n"  # proxies close silent connections
            continue
        for entry_id, raw in response[0][1]:
            last = entry_id
            fields = _decode(raw)
            kind = fields.pop("kind", "log")
            yield sse(kind, fields)
            if kind == "end":
                return
