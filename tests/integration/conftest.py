from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gateway.app import create_app
from shared.settings import GatewaySettings
from tests.conftest import asgi_client

SAMPLE_APP = b"""\
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"hello": "veil", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def gateway_settings(make_settings: Any) -> GatewaySettings:
    settings: GatewaySettings = make_settings(GatewaySettings, max_upload_bytes=2 * 1024 * 1024)
    return settings


@pytest.fixture
async def gateway(
    gateway_settings: GatewaySettings, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_app(gateway_settings)):
        yield client


async def signup(
    client: httpx.AsyncClient, role: str = "developer", email: str | None = None
) -> dict[str, str]:
    email = email or f"{role}-{secrets.token_hex(4)}@example.com"
    response = await client.post(
        "/api/v1/auth/signup", json={"email": email, "password": "correct horse", "role": role}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def create_api(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "Hello"
) -> Any:
    response = await client.post("/api/v1/apis", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    api_id: str,
    content: bytes,
    filename: str = "app.zip",
) -> httpx.Response:
    return await client.post(
        f"/api/v1/apis/{api_id}/upload",
        files={"file": (filename, content, "application/octet-stream")},
        headers=headers,
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["message"]
    assert error["request_id"]
    assert error["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code, error
    return error
