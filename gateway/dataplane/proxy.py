"""Forwarding one call to a container: streamed both ways, hop-by-hop headers dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from gateway.dataplane.cookies import confine, without_platform_cookies
from gateway.dataplane.upstream import UnsafeRequest, UpstreamError, UpstreamPool
from shared.errors import BadGateway, BadRequest, GatewayTimeout, PayloadTooLarge

# RFC 9110 §7.6.1 connection-specific fields, plus the platform's own credentials,
# which must never reach user code.
_DROP_REQUEST = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"x-api-key",
        b"x-request-id",
        b"x-veil-gateway-secret",  # only the gateway sets it
        b"x-forwarded-for",  # the gateway sets these from what it saw itself
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"expect",  # the gateway's server answers the caller's 100-continue itself
        b"content-length",  # framing is the client's: set from the body it sends
    }
)
_DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"x-request-id",
    }
)


# Answers up to this size (by their Content-Length) are read whole, then sent at once;
# larger or unsized ones stream chunk by chunk.
SMALL_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Forwarded:
    status: int
    upstream_ms: float | None
    bytes_in: int
    bytes_out: int


class _BodyCounter:
    """Streams the ASGI request body into aiohttp, counting it and enforcing the limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.count = 0
        self.too_large = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return
            body: bytes = message.get("body", b"")
            if body:
                self.count += len(body)
                if self.count > self.limit:
                    self.too_large = True  # aborts the upstream request mid-body
                    raise PayloadTooLarge(_too_large_message(self.limit))
                yield body
            if not message.get("more_body", False):
                return


def _too_large_answer(limit: int) -> BadGateway:
    return BadGateway(
        f"The API's answer is larger than it may send ({limit // (1024 * 1024)} MB).",
        code="response_too_large",
    )


def _too_large_message(limit: int) -> str:
    return f"The request body is larger than this gateway accepts ({limit} bytes)."


def request_headers(
    scope: Scope, request_id: str, drop_authorization: bool, gateway_secret: bytes
) -> list[tuple[str, str]]:
    """The caller's headers minus hop-by-hop and platform ones, plus the gateway's own."""
    out: list[tuple[str, str]] = []
    # Headers the caller named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    named = {
        token.strip().lower()
        for key, value in scope["headers"]
        if key == b"connection"
        for token in value.split(b",")
    }
    for key, value in scope["headers"]:
        if key in _DROP_REQUEST or key in named:
            continue
        if drop_authorization and key == b"authorization":
            continue
        if key == b"cookie":
            value = without_platform_cookies(value)
            if not value:
                continue
        out.append((key.decode("latin-1"), value.decode("latin-1")))
    out.append(("X-Request-Id", request_id))
    client = scope.get("client")
    if client:
        out.append(("X-Forwarded-For", client[0]))
    out.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    if gateway_secret:
        out.append(("X-Veil-Gateway-Secret", gateway_secret.decode("latin-1")))
    return out


def declared_length(scope: Scope) -> int | None:
    """Content-Length when sent; -1 for a chunked body; None for no body."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise BadRequest("Content-Length is not a number.", code="bad_request") from None
        if key == b"transfer-encoding":
            return -1
    return None


@dataclass(frozen=True)
class Upstream:
    """Where and how one call goes: everything the data plane decided before forwarding."""

    host: str
    port: int
    target: str  # path and query, as the container gets them
    headers: list[tuple[str, str]]
    timeout_seconds: float
    max_body_bytes: int
    max_response_bytes: int
    extra_response_headers: list[tuple[bytes, bytes]]
    cookie_path: bytes | None  # b"/<slug>/" on the path form (cookies.confine)


@lru_cache(maxsize=4096)
def endpoint_address(endpoint: str) -> tuple[str, int]:
    """(host, port) of a container's endpoint URL, `http://172.18.0.5:8080`."""
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http endpoint: {endpoint!r}")
    return parts.hostname, parts.port or 80


def upstream_target(rest: bytes, scope: Scope) -> str:
    """The container's request target: the normalised rest of the path, query as sent."""
    target = f"/{rest.decode('latin-1')}"
    query: bytes = scope.get("query_string", b"")
    return f"{target}?{query.decode('latin-1')}" if query else target


def _response_headers(
    raw: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...], cookie_path: bytes | None
) -> list[tuple[bytes, bytes]]:
    out = []
    for key, value in raw:
        name = key.lower()
        if name in _DROP_RESPONSE:
            continue
        if name == b"set-cookie":
            confined = confine(value, cookie_path)
            if confined is None:
                continue
            value = confined
        out.append((name, value))
    return out


async def forward(
    pool: UpstreamPool,
    target: Upstream,
    scope: Scope,
    receive: Receive,
    send: Send,
    request_id: str,
) -> Forwarded:
    length = declared_length(scope)
    if length is not None and length > target.max_body_bytes:
        raise PayloadTooLarge(_too_large_message(target.max_body_bytes))
    body = _BodyCounter(receive, target.max_body_bytes)
    sent_at = time.perf_counter()
    started = False
    try:
        async with asyncio.timeout(target.timeout_seconds):
            upstream = await pool.request(
                target.host,
                target.port,
                scope["method"],
                target.target,
                target.headers,
                body.chunks() if length else None,
                None if length == -1 else length,
            )
            async with upstream:
                upstream_ms = round((time.perf_counter() - sent_at) * 1000, 3)
                size = upstream.content_length
                if size is not None and size > target.max_response_bytes:
                    raise _too_large_answer(target.max_response_bytes)
                headers = _response_headers(upstream.raw_headers, target.cookie_path)
                headers.append((b"x-request-id", request_id.encode()))
                headers += target.extra_response_headers
                started = True
                await send(
                    {"type": "http.response.start", "status": upstream.status, "headers": headers}
                )
                if size is not None and size <= SMALL_BODY_BYTES:
                    # A small answer goes out in one piece: the server then sends it
                    # as is, without its streaming path.
                    payload = await upstream.read()
                    await send({"type": "http.response.body", "body": payload})
                    return Forwarded(upstream.status, upstream_ms, body.count, len(payload))
                sent = 0
                async for chunk in upstream.iter_chunks():
                    sent += len(chunk)
                    if sent > target.max_response_bytes:
                        # Too late for an error answer: the caller's connection is cut
                        # (its answer ends short) and the call is logged as a 502.
                        raise _too_large_answer(target.max_response_bytes)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return Forwarded(upstream.status, upstream_ms, body.count, sent)
    except TimeoutError:
        raise GatewayTimeout(
            f"The API did not answer within {target.timeout_seconds:g} s.",
            code="upstream_timeout",
        ) from None
    except UnsafeRequest as exc:
        raise BadRequest(f"This request cannot be forwarded: {exc}.", code="bad_request") from None
    except UpstreamError as exc:
        if body.too_large and not started:
            raise PayloadTooLarge(_too_large_message(target.max_body_bytes)) from None
        raise BadGateway(
            "The API's container is not reachable.", code="upstream_unreachable"
        ) from exc
