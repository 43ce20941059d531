"""Function containers cannot reach the platform or other tenants; hostile code is contained."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import httpx
import pytest
from redis.asyncio import Redis

from executor.deploy import Deployer
from executor.docker_adapter import deployment_container
from executor.reconciler import Reconciler
from shared.models import Deployment
from tests.integration.conftest import (
    create_api,
    deploy_and_wait,
    endpoint_of,
    signup,
    zip_bytes,
)

pytestmark = pytest.mark.docker
HOSTILE = (Path(__file__).parents[1] / "fixtures" / "hostile_app.py").read_bytes()


async def _hostile(gateway: httpx.AsyncClient, deployer: Deployer) -> tuple[str, str]:
    """Deploy the hostile app for a new developer; return (deployment id, endpoint)."""
    owner = await signup(gateway)
    api = await create_api(gateway, owner)
    status = await deploy_and_wait(
        gateway, deployer, owner, api["id"], zip_bytes({"main.py": HOSTILE})
    )
    assert status["status"] == "running", status
    return status["deployment_id"], await endpoint_of(deployer, status["deployment_id"])


async def _ask(endpoint: str, route: str, **params: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(f"{endpoint}{route}", params=params)
        return dict(response.json())


def _bridge_gateway(docker_client: docker.DockerClient, network: str) -> str:
    config = docker_client.networks.get(network).attrs["IPAM"]["Config"][0]
    return str(config["Gateway"])


async def test_cannot_reach_platform_services_or_other_tenants(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis_url: str,
    postgres_url: str,
    redis: Redis,
) -> None:
    _, mine = await _hostile(gateway, deployer)
    their_id, theirs = await _hostile(gateway, deployer)
    host = _bridge_gateway(docker_client, deployer.settings.function_network)
    their_ip = urlsplit(theirs).hostname
    assert their_ip is not None

    # Positive control: the probe does connect where it may (its own server).
    assert (await _ask(mine, "/probe", host="127.0.0.1", port="8080"))["connected"] is True
    targets = {
        "another tenant's container": (their_ip, "8080"),
        "redis": (host, str(urlsplit(redis_url).port)),
        "postgresql": (host, str(urlsplit(postgres_url).port)),
        "docker API over TCP": (host, "2375"),
    }
    for what, (target, port) in targets.items():
        answer = await _ask(mine, "/probe", host=target, port=port)
        assert answer["connected"] is False, f"{what} reachable: {answer}"
    # Docker's DNS answers container names on the network: theirs tell nothing.
    assert "error" in await _ask(mine, "/resolve", name=f"veil-{their_id}")  # the old name
    named = await _ask(mine, "/resolve", ip=their_ip)
    assert their_id[:8] not in json.dumps(named), named
    assert (await _ask(mine, "/file", path="/var/run/docker.sock"))["exists"] is False
    assert (await _ask(mine, "/write", path="/app/main.py"))["written"] is False
    assert (await _ask(mine, "/write", path="/etc/passwd"))["written"] is False
    assert (await _ask(mine, "/write", path="/tmp/scratch"))["written"] is True


async def test_hostile_code_is_contained(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    s = deployer.settings
    deployment_id, endpoint = await _hostile(gateway, deployer)
    _, neighbour = await _hostile(gateway, deployer)

    forks = await _ask(endpoint, "/forkbomb")
    assert forks["refused"] is True
    assert forks["forks"] < s.pids_limit
    opened = await _ask(endpoint, "/files")
    assert opened["opened"] < s.nofile_limit
    filled = await _ask(endpoint, "/fill")
    assert filled["bytes"] <= s.tmpfs_size_mb * 1024 * 1024
    await _ask(endpoint, "/spam")
    log_config = deployment_container(docker_client, deployment_id).attrs["HostConfig"]
    assert log_config["LogConfig"]["Config"] == {"max-size": "1m", "max-file": "2"}

    # Memory past the limit: the kernel kills the app, the neighbour keeps serving,
    # and the reconciler records what happened and brings it back.
    with pytest.raises(httpx.HTTPError):
        await _ask(endpoint, "/eat")
    for _ in range(50):
        if not deployment_container(docker_client, deployment_id).attrs["State"]["Running"]:
            break
        await asyncio.sleep(0.1)
    state = deployment_container(docker_client, deployment_id).attrs["State"]
    assert state["OOMKilled"] is True
    assert (await _ask(neighbour, "/"))["ok"] is True
    s.restart_backoff_seconds = 0
    report = await Reconciler(deployer, deployer.sessions).run_once()
    assert report.restarted == [deployment_id]

    async with deployer.sessions() as session:
        row = await session.get(Deployment, deployment_id)
        assert row is not None
        assert row.last_exit == "oom-killed"
        assert row.restart_count == 1
        # When it died, from the engine: before the restart, not when we looked.
        assert row.last_exit_at is not None
        assert row.last_restart_at is not None
        assert row.last_exit_at <= row.last_restart_at
    assert (await _ask(await endpoint_of(deployer, deployment_id), "/"))["ok"] is True
