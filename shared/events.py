"""The execution event: one per proxied call, written by the data plane, read by analytics.

Carried as a flat Redis stream entry (all values are strings) so that any
consumer can read it without this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

log = logging.getLogger("veil.events")

EXECUTIONS_STREAM = "veil:executions"
ROUTES_CHANNEL = "veil:routes"
# API-key changes (revoke, rotate, subscription or plan change): the message is a
# key hash, or "*" for all; every data-plane worker drops those cached keys. An
# account's suspension or its lifting: "user:<id>" (its bearer tokens on the data plane).
KEYS_CHANNEL = "veil:keys"
USER_INVALIDATION_PREFIX = "user:"


async def publish_route_change(redis: Redis, slug: str) -> None:
    """Tell every data-plane worker to drop its cached route for `slug` ("*": all).

    Best effort: when Redis is down the workers' short cache TTL takes over.
    """
    try:
        await redis.publish(ROUTES_CHANNEL, slug)
    except Exception as exc:
        log.warning("could not publish route change for %s: %s", slug, exc)


async def publish_key_change(redis: Redis, key_hash: str) -> None:
    """Tell every data-plane worker to drop its cached key `key_hash` ("*": all keys).

    Call after the commit. Best effort, like route changes: when Redis is down
    the workers' short key-cache TTL takes over.
    """
    try:
        await redis.publish(KEYS_CHANNEL, key_hash)
    except Exception as exc:
        log.warning("could not publish key change for %s: %s", key_hash[:12], exc)



async def publish_account_change(redis: Redis, user_id: str) -> None:
    """Tell every data-plane worker to look the account up again (suspended or lifted)."""
    await publish_key_change(redis, USER_INVALIDATION_PREFIX + user_id)

# The data plane counts every event it appends, per API and minute of the call,
# in a hash per minute beside the stream; analytics reconciles its stored counts
# against these. Kept long enough to reconcile a week.
EXECUTION_COUNTS_TTL_SECONDS = 8 * 24 * 3600


def execution_counts_key(stream: str, started_at: datetime) -> str:
    """The hash (field: API id, value: events appended) for the UTC minute of `started_at`."""
    return f"{stream}:counts:{started_at.astimezone(UTC):%Y%m%dT%H%M}"


def build_feed_stream(deployment_id: str) -> str:
    """Redis stream with one deployment's build log and status changes."""
    return f"veil:deployments:{deployment_id}:feed"


@dataclass(frozen=True)
class ExecutionEvent:
    event_id: str
    request_id: str
    api_id: str
    deployment_id: str | None
    caller_id: str | None
    method: str
    path: str
    status_code: int
    latency_ms: float  # total time in the data plane, first byte in to last byte out
    upstream_ms: float | None  # time waiting for the container's response headers
    bytes_in: int
    bytes_out: int
    started_at: datetime
    # Who paid for the call: set when it came with an API key (None: the owner's token).
    key_id: str | None = None
    subscription_id: str | None = None
    version: int | None = None  # the API version the deployment runs
    gateway_ms: float | None = None  # time in the data plane itself: latency minus upstream

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        # vars(), not asdict(): no deep copy, on the data plane's path for every call.
        for key, value in vars(self).items():
            if value is None:
                continue
            out[key] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    @classmethod
    def from_fields(cls, raw: dict[bytes, bytes] | dict[str, str]) -> ExecutionEvent:
        data: dict[str, str]
        if raw and isinstance(next(iter(raw)), bytes):  # as redis-py returns them: one test
            data = {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]
        else:
            data = {
                (k.decode() if isinstance(k, bytes) else k): (
                    v.decode() if isinstance(v, bytes) else v
                )
                for k, v in raw.items()
            }
        required = {
            "event_id",
            "request_id",
            "api_id",
            "method",
            "path",
            "status_code",
            "started_at",
        }
        missing = required - set(data)
        if missing:
            raise ValueError(f"execution event lacks {sorted(missing)}")
        upstream = data.get("upstream_ms")
        return cls(
            event_id=data["event_id"],
            request_id=data["request_id"],
            api_id=data["api_id"],
            deployment_id=data.get("deployment_id"),
            caller_id=data.get("caller_id"),
            method=data["method"],
            path=data["path"],
            status_code=int(data["status_code"]),
            latency_ms=float(data.get("latency_ms", 0)),
            upstream_ms=float(upstream) if upstream is not None else None,
            bytes_in=int(data.get("bytes_in", 0)),
            bytes_out=int(data.get("bytes_out", 0)),
            started_at=datetime.fromisoformat(data["started_at"]),
            key_id=data.get("key_id"),
            subscription_id=data.get("subscription_id"),
            version=int(data["version"]) if data.get("version") else None,
            gateway_ms=float(data["gateway_ms"]) if data.get("gateway_ms") else None,
        )
