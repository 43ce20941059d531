"""Live feed of one deployment for watchers: build log lines and status changes.

Written to a Redis stream per deployment, so any gateway (on any host) can
follow it from the start and clients that connect late still see everything.
A short outage of Redis only costs the live view; the log file and the
deployment row keep the record.
"""

from __future__ import annotations

import contextlib
import logging

from redis import Redis
from redis.exceptions import RedisError

from shared.events import build_feed_stream

log = logging.getLogger("veil.executor.feed")

FEED_MAXLEN = 10_000
FEED_TTL_SECONDS = 24 * 3600


class BuildFeed:
    def __init__(self, redis: Redis, deployment_id: str) -> None:
        self._redis = redis
        self._key = build_feed_stream(deployment_id)
        self._broken = False

    def line(self, text: str) -> None:
        self._add({"kind": "log", "line": text})

    def status(self, status: str) -> None:
        self._add({"kind": "status", "status": status})

    def end(self, status: str, error: str | None = None) -> None:
        fields = {"kind": "end", "status": status}
        if error:
            fields["error"] = error
        self._add(fields)
        with contextlib.suppress(RedisError):
            self._redis.expire(self._key, FEED_TTL_SECONDS)

    def _add(self, fields: dict[str, str]) -> None:
        if self._broken:
            return
        try:
            self._redis.xadd(self._key, fields, maxlen=FEED_MAXLEN, approximate=True)  # type: ignore[arg-type]
        except RedisError as exc:
            log.warning("build feed unavailable (%s); the log file still has everything", exc)
            self._broken = True
