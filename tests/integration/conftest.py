from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor.deploy import Deployer, prepare_networks
from executor.docker_adapter import DockerAdapter
from gateway.app import create_app
from shared.db import create_engine, create_sessionmaker
from shared.errors import VeilError
from shared.models import Deployment
from shared.settings import ExecutorSettings, GatewaySettings
from tests.conftest import asgi_client, settings_maker

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


def _gateway_settings(make_settings: Any) -> GatewaySettings:
    settings: GatewaySettings = make_settings(
        GatewaySettings,
        max_upload_bytes=2 * 1024 * 1024,
        # Every test calls from one address: its failed sign-ins must not add up
        # to a lock over the session (test_login_throttle sets its own limits).
        login_free_failures_per_address=1_000_000,
    )
    return settings


@pytest.fixture
def gateway_settings(make_settings: Any) -> GatewaySettings:
    return _gateway_settings(make_settings)


@pytest.fixture(scope="module")
def module_gateway_settings(
    module_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> GatewaySettings:
    data_dir = tmp_path_factory.mktemp("module-data")
    return _gateway_settings(settings_maker(module_database_url, redis_url, data_dir))


@pytest.fixture
async def sessions(settings: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the database of the test module's own `settings` fixture (any
    service's settings: each has `resolved_database_url`)."""
    engine = create_engine(settings.resolved_database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def gateway(
    gateway_settings: GatewaySettings, redis: Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(create_app(gateway_settings)):
        yield client


@pytest.fixture(scope="module")
async def module_gateway(
    module_gateway_settings: GatewaySettings,
) -> AsyncIterator[httpx.AsyncClient]:
    """One gateway (one lifespan, one database) for a module's tests on one backend, for
    tests whose requests are all refused: they leave nothing another test could see,
    and a gateway of their own each cost more than the request they check."""
    async for client in asgi_client(create_app(module_gateway_settings)):
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


async def heard_so_far(pubsub: PubSub) -> list[tuple[str, str]]:
    """(channel, message) for every message on `pubsub`'s channels published until now,
    in order, without waiting for a quiet moment: Redis answers a subscriber's PING in
    line with its messages, so everything published before the PING (the gateway
    publishes before it answers) comes before the pong."""
    marker = secrets.token_hex(8)
    await pubsub.ping(marker)
    heard: list[tuple[str, str]] = []
    async with asyncio.timeout(10):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
            if message is None:
                continue
            data = message["data"]
            text = data.decode() if isinstance(data, bytes) else str(data)
            if message["type"] == "pong" and text == marker:
                return heard
            if message["type"] == "message":
                heard.append((message["channel"].decode(), text))


async def published_so_far(pubsub: PubSub) -> list[str]:
    """The messages of `heard_so_far`, without their channels."""
    return [text for _channel, text in await heard_so_far(pubsub)]


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


# ---- Docker: a Deployer running in the test, and cleanup by instance label ----


@pytest.fixture
def instance_label() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
def docker_client(instance_label: str) -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    # Every container and image this test made carries its label: remove them all.
    label = f"veil.instance={instance_label}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for image in client.images.list(filters={"label": label}):
        client.images.remove(image.id, force=True)
    client.close()


@pytest.fixture(scope="session")
def build_proxy_port() -> Iterator[int]:
    """The build proxy (executor/build_proxy.py) as `make run` starts it, on a port of
    the tests' own, for every test that builds; stopped by its pid at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {
        **os.environ,
        "VEIL_BUILD_PROXY_PORT": str(port),
        "VEIL_JWT_SECRET": secrets.token_urlsafe(32),
        "VEIL_SERVICE_TOKEN": secrets.token_urlsafe(32),
        "VEIL_SECRETS_KEY": secrets.token_urlsafe(32),
    }
    # Its log to a file (a pipe nobody reads could fill up and stall it).
    log = (Path(tempfile.gettempdir()) / f"veil-test-build-proxy-{port}.log").open("wb")
    proxy = subprocess.Popen([sys.executable, "-m", "executor.build_proxy"], env=env, stderr=log)
    try:
        _wait_until_listening(proxy, ExecutorSettings.model_fields["build_network"].default, port)
        yield port
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        log.close()


def _wait_until_listening(proxy: subprocess.Popen[bytes], network: str, port: int) -> None:
    """Until the proxy answers on the gateway address of `network` (which it creates)."""
    adapter = DockerAdapter.from_env()
    deadline = time.monotonic() + 30
    try:
        while True:
            assert proxy.poll() is None, f"the build proxy exited ({proxy.returncode})"
            with contextlib.suppress(OSError, VeilError):
                socket.create_connection((adapter.network_gateway(network), port), 1).close()
                return
            assert time.monotonic() < deadline, "the build proxy did not start"
            time.sleep(0.1)
    finally:
        adapter.close()


@pytest.fixture
async def deployer(
    make_settings: Any,
    gateway_settings: GatewaySettings,
    instance_label: str,
    docker_client: docker.DockerClient,
    build_proxy_port: int,
) -> AsyncIterator[Deployer]:
    settings: ExecutorSettings = make_settings(
        ExecutorSettings,
        instance_label=instance_label,
        data_dir=gateway_settings.data_dir,
        start_timeout_seconds=15,
        drain_seconds=0.1,
        build_proxy_port=build_proxy_port,
    )
    engine = create_engine(settings.resolved_database_url)
    adapter = DockerAdapter.from_env()
    prepare_networks(adapter, settings)
    redis = SyncRedis.from_url(settings.redis_url)
    yield Deployer(settings, create_sessionmaker(engine), adapter, redis)
    redis.close()
    adapter.close()
    await engine.dispose()


async def deploy_and_wait(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    headers: dict[str, str],
    api_id: str,
    content: bytes,
    filename: str = "app.zip",
) -> dict[str, Any]:
    assert (await upload(gateway, headers, api_id, content, filename)).status_code == 201
    deployment = (await gateway.post(f"/api/v1/apis/{api_id}/deploy", headers=headers)).json()
    await deployer.run(deployment["deployment_id"])
    status: dict[str, Any] = (
        await gateway.get(f"/api/v1/apis/{api_id}/status", headers=headers)
    ).json()
    return status


async def endpoint_of(deployer: Deployer, deployment_id: str) -> str:

    async with deployer.sessions() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        assert deployment.endpoint
        return str(deployment.endpoint)
