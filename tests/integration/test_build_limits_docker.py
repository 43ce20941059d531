"""Runaway builds: a build past its time or memory limit fails with a clear status.

The user code that runs at build time here is an npm `install` script (root
package lifecycle scripts run on `npm install`), the same door a hostile
dependency would use.
"""

from __future__ import annotations

import json
import time

import docker
import httpx
import pytest
from redis.asyncio import Redis

from executor.deploy import Deployer
from tests.integration.conftest import create_api, deploy_and_wait, signup, zip_bytes

pytestmark = pytest.mark.docker

SERVER = b"require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)\n"


def node_app(install_script: str) -> bytes:
    package = {"name": "runaway", "version": "1.0.0", "scripts": {"install": install_script}}
    return zip_bytes({"package.json": json.dumps(package).encode(), "index.js": SERVER})


def limited(deployer: Deployer, **limits: float) -> Deployer:
    settings = deployer.settings.model_copy(update=limits)
    return Deployer(settings, deployer.sessions, deployer.docker, deployer.redis)


def build_containers(client: docker.DockerClient, instance_label: str) -> list[str]:
    """This test's build sandboxes still there (running a build step or not)."""
    labels = [f"veil.instance={instance_label}", "veil.role=build"]
    return [c.name for c in client.containers.list(all=True, filters={"label": labels})]


async def test_silent_endless_build_is_stopped_at_its_time_limit(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    runaway = limited(deployer, build_timeout_seconds=8)
    started = time.monotonic()
    status = await deploy_and_wait(
        gateway, runaway, alice, api["id"], node_app("node -e 'setInterval(() => {}, 1000)'")
    )
    elapsed = time.monotonic() - started
    assert status["status"] == "failed", status
    assert "took longer than 8 s" in status["error"], status
    assert elapsed < 30, elapsed  # stopped at the limit, not at some socket timeout
    # The sandbox is removed at the limit: nothing keeps running.
    assert build_containers(docker_client, instance_label) == []


async def test_build_past_its_memory_limit_is_reported_as_out_of_memory(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    greedy = limited(deployer, build_memory_limit_mb=96, build_disk_limit_mb=64)
    hog = "node -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'"
    status = await deploy_and_wait(gateway, greedy, alice, api["id"], node_app(hog))
    assert status["status"] == "failed", status
    assert "ran out of memory (limit 96 MB, plus 64 MB for its files)" in status["error"], status
    assert status["log_tail"]


async def test_build_output_keeps_no_terminal_colour_codes(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    noisy = "node -e 'console.error(\"to stderr\"); process.exit(3)'"
    status = await deploy_and_wait(gateway, deployer, alice, api["id"], node_app(noisy))
    assert status["status"] == "failed", status
    assert "ran out of memory" not in status["error"]
    assert "to stderr" in status["log_tail"]
    assert "\x1b[" not in status["log_tail"]
