"""Serve the web UI: `index.html` at `/`, everything else of `frontend/` under `/assets`.

The UI is static files (plain ES modules and CSS, no build step) that talk to
`/api/v1` on the same origin. Every UI response carries a strict Content-Security-
Policy: scripts, styles and connections from this origin only, no inline script,
no framing. API responses are left as they are (they are JSON, never rendered).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRONTEND_DIR = Path(__file__).resolve().parents[2] / "frontend"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)

# The assets have no content hash in their names (there is no build step), so a
# browser keeps them but asks again each time: a 304 from the ETag costs little, and an
# upgrade never runs new and old modules side by side.
CACHE_CONTROL = (b"cache-control", b"no-cache")


class SecurityHeaders:
    """Pure ASGI middleware: the UI's security and cache headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in (*SECURITY_HEADERS, CACHE_CONTROL) if h[0] not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _index(frontend_dir: Path) -> Response:
    response = FileResponse(frontend_dir / "index.html", media_type="text/html; charset=utf-8")
    for name, value in (*SECURITY_HEADERS, CACHE_CONTROL):
        response.headers[name.decode()] = value.decode()
    return response


def install_web_ui(app: FastAPI, frontend_dir: Path = FRONTEND_DIR) -> None:
    """Add the UI to the gateway app: `/` (and `/index.html`) and `/assets/…`.

    Mounted beside the API rather than at `/`, so that an unknown `/api/...` path still
    answers 404 in the JSON error shape.
    """

    async def index() -> Response:
        return _index(frontend_dir)

    for path in ("/", "/index.html"):
        app.add_api_route(path, index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(
        "/assets",
        SecurityHeaders(StaticFiles(directory=frontend_dir, check_dir=False)),
        name="web-assets",
    )
