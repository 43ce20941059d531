"""The data plane on :8000: `ANY /<api-slug>/<path>` forwarded to the API's container.

A raw ASGI app on purpose: a framework's routing and request objects would cost CPU on
every call of the hot path.
Per call: resolve the slug (cached), authenticate the caller, stream the
request to the container with a pooled keep-alive client (upstream.py), stream the answer
back, then emit one execution event.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from starlette.types import Receive, Scope, Send

from gateway.dataplane.accounts import AccountCache, split_key_message
from gateway.dataplane.auth import Caller, identify
from gateway.dataplane.events import EventSink
from gateway.dataplane.failures import FailedKeys
from gateway.dataplane.invalidation import follow
from gateway.dataplane.keys import KeyCache
from gateway.dataplane.limits import Limiter, refusal
from gateway.dataplane.paths import host_path, route_path, slug_from_host
from gateway.dataplane.proxy import (
    Forwarded,
    Upstream,
    endpoint_address,
    forward,
    request_headers,
    upstream_target,
)
from gateway.dataplane.routes import Route, RouteTable
from gateway.dataplane.upstream import UpstreamPool
from shared.db import create_engine, create_sessionmaker, database_ready
from shared.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    VeilError,
)
from shared.events import ExecutionEvent, new_event_id
from shared.http.client_address import client_address
from shared.http.context import current_request_id
from shared.http.errors import error_body
from shared.http.request_id import pick_request_id
from shared.invalidation import KEYS_CHANNEL, ROUTES_CHANNEL
from shared.settings import DataPlaneSettings

log = logging.getLogger("veil.dataplane")


class DataPlane:
    def __init__(self, settings: DataPlaneSettings) -> None:
        self.settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        self._jwt_secret = settings.jwt_secret.get_secret_value()
        self._timeout = settings.upstream_timeout_seconds
        self._workers = max(1, settings.dataplane_workers)
        self._api_domain = settings.api_domain.strip(".").lower().encode("ascii")
        self._address_header = settings.client_address_header.lower().encode("latin-1")
        self._in_flight: dict[str, int] = {}  # api id → calls this worker is forwarding

    async def startup(self) -> None:
        self.engine = create_engine(
            self.settings.resolved_database_url, self.settings.database_timeouts
        )
        sessions = create_sessionmaker(self.engine)
        self.routes = RouteTable(
            sessions,
            self.settings.route_cache_ttl_seconds,
            self.settings.secrets_key.get_secret_value(),
        )
        self.keys = KeyCache(sessions, self.settings.key_cache_ttl_seconds)
        self.accounts = AccountCache(sessions, self.settings.key_cache_ttl_seconds)
        self.failed_keys = FailedKeys(self.settings.failed_keys_per_minute)
        # A blocking pool: past its size a call waits for a connection instead of
        # failing, which would read as "Redis down" (and, failing open, as no limits).
        self.redis = Redis.from_pool(  # from_pool: closing the client closes the pool
            BlockingConnectionPool.from_url(self.settings.redis_url, max_connections=128, timeout=2)
        )
        self.limiter = Limiter(self.redis, fail_open=self.settings.rate_limit_fail_open)
        self.events = EventSink(
            self.redis, self.settings.events_stream, self.settings.events_stream_maxlen
        )
        self.client = UpstreamPool()
        self._events_writer = asyncio.create_task(self.events.run_forever())
        self._tasks = [
            asyncio.create_task(follow(self.redis, ROUTES_CHANNEL, self.routes.invalidate)),
            asyncio.create_task(follow(self.redis, KEYS_CHANNEL, self._drop_credentials)),
        ]
        # What is alive now (modules, SQLAlchemy's metadata, settings: a hundred
        # thousand objects) lives as long as the worker. Frozen, it is left out of full
        # collections, which otherwise walk it all while every call in flight waits
        # (docs/benchmarks.md has the pause it cost).
        gc.collect()
        gc.freeze()

    def _drop_credentials(self, message: str | None) -> None:
        kind, name = split_key_message(message)
        if kind != "user":
            self.keys.invalidate(name)
        if kind != "key":
            self.accounts.invalidate(name)

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.events.close(self._events_writer)
        await self.limiter.close()
        await self.client.close()
        await self.redis.aclose()
        await self.engine.dispose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        started_at = datetime.now(UTC)
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        request_id = pick_request_id(_header(headers, b"x-request-id"))
        token = current_request_id.set(request_id)
        route: Route | None = None
        caller: Caller | None = None
        limit_headers: list[tuple[bytes, bytes]] = []
        try:
            if scope["path"] == "/healthz":
                await _send_plain(send, 200, b'{"status":"ok"}', request_id)
                return
            if scope["path"] == "/readyz":  # ready: the database answers (routes can load)
                ready = await database_ready(self.engine)
                body = b'{"status":"ok"}' if ready else b'{"status":"unavailable"}'
                await _send_plain(send, 200 if ready else 503, body, request_id)
                return
            slug, rest, cookie_path = self._route(scope, headers)
            route = await self.routes.resolve(slug) if slug else None
            if route is None:
                raise NotFound(f"No API is published as '{slug}'.", code="api_not_found")
            if route.suspended:
                raise Forbidden(
                    "This API is suspended by the platform's admins.", code="api_suspended"
                )
            caller = await identify(
                headers,
                route,
                self.keys,
                self.accounts,
                self._jwt_secret,
                self.failed_keys,
                lambda: client_address(headers, _peer(scope), self._address_header),
            )
            if caller.key is not None and not caller.key.policy.unlimited:
                decision = await self.limiter.check(caller.key.subscription_id, caller.key.policy)
                limit_headers = decision.headers
                if not decision.allowed:
                    raise refusal(decision)
            if route.endpoint is None:
                raise ServiceUnavailable(
                    "This API is not running right now.",
                    code="api_not_running",
                    headers={"Retry-After": "5"},
                )
            host, port = endpoint_address(route.endpoint)
            target = Upstream(
                host=host,
                port=port,
                target=upstream_target(rest, scope),
                headers=request_headers(
                    scope,
                    request_id,
                    drop_authorization=caller.key is None,  # it was Veil's token
                    gateway_secret=route.gateway_secret,
                ),
                timeout_seconds=route.timeout_seconds or self._timeout,
                max_body_bytes=self.settings.max_request_body_bytes,
                max_response_bytes=min(
                    route.max_response_mb or self.settings.max_response_mb,
                    self.settings.max_response_mb,
                )
                * 1024
                * 1024,
                extra_response_headers=limit_headers,
                cookie_path=cookie_path,
            )
            result = await self._forward_limited(route, target, scope, receive, send, request_id)
        except VeilError as exc:
            await _send_error(send, exc, request_id, limit_headers)
            result = Forwarded(status=exc.status, upstream_ms=None, bytes_in=0, bytes_out=0)
        finally:
            current_request_id.reset(token)
        if route is not None:
            self._record(route, caller, scope, request_id, started, started_at, result)

    def _route(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> tuple[str, bytes, bytes | None]:
        """(slug, rest of the path, cookie path prefix) from the host name or the path.

        `<slug>.<api_domain>` is the API's own origin; any other host takes the
        path form `/<slug>/<rest>`, unless path routing is switched off.
        """
        raw_path: bytes = (scope.get("raw_path") or scope["path"].encode()).partition(b"?")[0]
        host = _header(headers, b"host") or b""
        slug = slug_from_host(host, self._api_domain) if self._api_domain else None
        if slug is not None:
            rest = host_path(raw_path)
            if rest is None:
                raise _unroutable()
            return slug, rest, None
        if not self.settings.path_routing:
            raise NotFound(
                f"APIs are served on their own host names: <slug>.{self.settings.api_domain}.",
                code="api_not_found",
            )
        routed = route_path(raw_path)
        if routed is None:
            raise _unroutable()
        return routed.slug, routed.rest, f"/{routed.slug}/".encode()

    async def _forward_limited(
        self,
        route: Route,
        target: Upstream,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
    ) -> Forwarded:
        """Forward, unless the API already has its maximum of calls in flight (429).

        Each worker admits its share, ceil(limit / workers): no Redis round trip on
        the hot path, exact with one worker, never more than the limit rounded up
        to a multiple of the worker count.
        """
        if route.max_concurrency is None:
            return await forward(self.client, target, scope, receive, send, request_id)
        share = -(-route.max_concurrency // self._workers)
        in_flight = self._in_flight.get(route.api_id, 0)
        if in_flight >= share:
            raise TooManyRequests(
                f"This API is already answering its maximum of {route.max_concurrency}"
                " calls at once; retry shortly.",
                code="concurrency_limit",
                headers={"Retry-After": "1"},
            )
        self._in_flight[route.api_id] = in_flight + 1
        try:
            return await forward(self.client, target, scope, receive, send, request_id)
        finally:
            left = self._in_flight[route.api_id] - 1
            if left:
                self._in_flight[route.api_id] = left
            else:
                del self._in_flight[route.api_id]

    def _record(
        self,
        route: Route,
        caller: Caller | None,
        scope: Scope,
        request_id: str,
        started: float,
        started_at: datetime,
        result: Forwarded,
    ) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        key = caller.key if caller is not None else None
        upstream_ms = result.upstream_ms or 0.0
        event = ExecutionEvent(
            event_id=new_event_id(),
            request_id=request_id,
            api_id=route.api_id,
            deployment_id=route.deployment_id,
            caller_id=caller.user_id if caller is not None else None,
            method=scope["method"],
            path=scope["path"][:2048],
            status_code=result.status,
            latency_ms=latency_ms,
            upstream_ms=result.upstream_ms,
            bytes_in=result.bytes_in,
            bytes_out=result.bytes_out,
            started_at=started_at,
            key_id=key.key_id if key is not None else None,
            subscription_id=key.subscription_id if key is not None else None,
            version=route.version,
            gateway_ms=round(max(latency_ms - upstream_ms, 0.0), 3),
        )
        self.events.add(event)


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _unroutable() -> BadRequest:
    return BadRequest(
        "This path cannot be routed (a dot segment behind an encoded separator, or NUL).",
        code="invalid_path",
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


async def _send_plain(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    extra: dict[str, str] | None = None,
    raw_extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    have = {name for name, _ in headers}
    headers += [(k, v) for k, v in raw_extra or [] if k not in have]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(
    send: Send, exc: VeilError, request_id: str, limit_headers: list[tuple[bytes, bytes]]
) -> None:
    """The error shape; the caller's RateLimit fields ride along on every answer."""
    body = error_body(exc.code, exc.message, request_id, exc.details or None)
    try:
        await _send_plain(send, exc.status, body, request_id, exc.headers, limit_headers)
    except Exception as send_exc:  # response already started: nothing more to say
        log.debug("could not send error response: %s", send_exc)


def create_app(settings: DataPlaneSettings | None = None) -> Any:
    return DataPlane(settings or DataPlaneSettings())
