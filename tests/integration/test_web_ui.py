"""The web UI is served by the gateway at `/`, every asset from Veil itself, with
security headers; the API keeps its JSON errors. No browser, no database."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.web.router import FRONTEND_DIR
from shared.settings import GatewaySettings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Static files need no lifespan (database, Redis): the app is not started.
    settings = GatewaySettings(
        jwt_secret=secrets.token_urlsafe(32),
        service_token=secrets.token_urlsafe(32),
        secrets_key=secrets.token_urlsafe(32),
        data_dir=tmp_path,
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert "cache-control" in response.headers


async def test_index_is_served_with_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-request-id"]
    assert_security_headers(response)
    assert '<script type="module" src="/assets/js/app.js">' in response.text
    # No inline script or style, and nothing from another origin (works offline).
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
    assert "<style" not in response.text
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text)


async def test_assets_are_served_with_headers_and_revalidate(client: httpx.AsyncClient) -> None:
    script = await client.get("/assets/js/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert_security_headers(script)
    etag = script.headers["etag"]
    again = await client.get("/assets/js/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    style = await client.get("/assets/css/app.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


async def test_every_asset_is_local() -> None:
    """No CDN: no module, stylesheet or script names another origin."""
    for path in FRONTEND_DIR.rglob("*"):
        if path.suffix in {".js", ".css", ".html"}:
            text = path.read_text()
            assert not re.search(r"(import|from|url\(|src=|href=)\s*['\"(]?https?://", text), path
            if path.suffix == ".js":
                # User data goes in as text: nothing parses strings as HTML.
                for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
                    assert sink not in text, (sink, path)
                assert "eval(" not in text, path


async def test_unknown_paths_keep_the_api_error_shape(client: httpx.AsyncClient) -> None:
    missing_asset = await client.get("/assets/js/nope.js")
    assert missing_asset.status_code == 404
    assert missing_asset.json()["error"]["code"] == "not_found"
    unknown_api = await client.get("/api/v1/nope")
    assert unknown_api.status_code == 404
    assert unknown_api.json()["error"]["code"] == "not_found"
    assert "content-security-policy" not in unknown_api.headers
    escape = await client.get("/assets/%2e%2e/gateway/app.py")
    assert escape.status_code == 404
