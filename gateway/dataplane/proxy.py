"""Forwarding one call to a container: streamed both ways, hop-by-hop headers dropped."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from starlette.types import Receive, Scope, Send

from shared.errors import BadGateway, GatewayTimeout

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
        b"authorization",
        b"x-api-key",
        b"x-request-id",
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


@dataclass(frozen=True)
class Forwarded:
    status: int
    upstream_ms: float | None
    bytes_in: int
    bytes_out: int


class _BodyCounter:
    """Streams the ASGI request body into aiohttp while counting its bytes."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.count = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return
            body: bytes = message.get("body", b"")
            if body:
                self.count += len(body)
                yield body
            if not message.get("more_body", False):
                return


def _upstream_url(endpoint: str, scope: Scope) -> str:
    # Use the raw path so percent-encoding reaches the app as the caller sent it;
    # strip the slug segment, keep the rest.
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    rest = raw.lstrip(b"/").partition(b"/")[2]
    url = f"{endpoint}/{rest.decode('latin-1')}"
    query: bytes = scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


def _request_headers(scope: Scope, request_id: str) -> list[tuple[str, str]]:
    out = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in scope["headers"]
        if k not in _DROP_REQUEST
    ]
    out.append(("X-Request-Id", request_id))
    client = scope.get("client")
    if client:
        out.append(("X-Forwarded-For", client[0]))
    out.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    return out


def _has_body(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return bool(value != b"0")
        if key == b"transfer-encoding":
            return True
    return False


async def forward(
    client: aiohttp.ClientSession,
    endpoint: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    request_id: str,
    timeout_seconds: float,
) -> Forwarded:
    body = _BodyCounter(receive)
    data = body.chunks() if _has_body(scope) else None
    sent_at = time.perf_counter()
    try:
        async with client.request(
            scope["method"],
            _upstream_url(endpoint, scope),
            headers=_request_headers(scope, request_id),
            data=data,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as upstream:
            upstream_ms = round((time.perf_counter() - sent_at) * 1000, 3)
            headers = [
                (k.lower(), v) for k, v in upstream.raw_headers if k.lower() not in _DROP_RESPONSE
            ]
            headers.append((b"x-request-id", request_id.encode()))
            await send(
                {"type": "http.response.start", "status": upstream.status, "headers": headers}
            )
            sent = 0
            async for chunk in upstream.content.iter_any():
                sent += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return Forwarded(upstream.status, upstream_ms, body.count, sent)
    except TimeoutError:
        raise GatewayTimeout(
            f"The API did not answer within {timeout_seconds:g} s.", code="upstream_timeout"
        ) from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise BadGateway(
            "The API's container is not reachable.", code="upstream_unreachable"
        ) from exc
