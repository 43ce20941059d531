"""Request ids: accepted from a well-formed `X-Request-Id` header, else generated."""

from __future__ import annotations

import logging
import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.context import current_request_id
from shared.http.errors import error_body

log = logging.getLogger("veil.errors")
REQUEST_ID_HEADER = "x-request-id"
_VALID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id() -> str:
    """32 hex digits. From the module's generator, not uuid4(): that reads os.urandom
    on every call, a syscall the data plane would pay per request. A request id
    must be unique, not secret; the generator is seeded from urandom (again in
    each forked worker)."""
    return f"{random.getrandbits(128):032x}"


def pick_request_id(incoming: bytes | None) -> str:
    if incoming:
        value = incoming.decode("latin-1")
        if _VALID.match(value):
            return value
    return new_request_id()


class RequestIdMiddleware:
    """Pure ASGI middleware: sets the context variable and echoes the header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode())
        request_id = pick_request_id(incoming)
        token = current_request_id.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_id(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            # Unhandled errors still answer in the one error shape, with the id.
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = error_body("internal_error", "Something went wrong on our side.", request_id)
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            current_request_id.reset(token)
