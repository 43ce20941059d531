"""Where a running function may connect: the egress policy (executor/egress.py).

Every target is a listener of this test on this machine (the functions' bridge
gateway, another of the host's addresses); the only outside name asked for is
a package index, which the default policy lets functions reach.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from executor import egress
from executor.deploy import Deployer, prepare_networks
from tests.integration.conftest import create_api, deploy_and_wait, endpoint_of, signup, zip_bytes
from tests.integration.test_build_sandbox_docker import host_address, listener

pytestmark = pytest.mark.docker
HOSTILE = (Path(__file__).parents[1] / "fixtures" / "hostile_app.py").read_bytes()


@pytest.fixture
def database_url(sqlite_database_url: str) -> str:
    """SQLite only: where a container may connect does not depend on the database."""
    return sqlite_database_url


async def hostile_endpoint(gateway: httpx.AsyncClient, deployer: Deployer) -> str:
    owner = await signup(gateway)
    api = await create_api(gateway, owner)
    status = await deploy_and_wait(
        gateway, deployer, owner, api["id"], zip_bytes({"main.py": HOSTILE})
    )
    assert status["status"] == "running", status
    return await endpoint_of(deployer, status["deployment_id"])


async def reach(endpoint: str, host: str, port: int | str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{endpoint}/probe", params={"host": host, "port": str(port)})
    return dict(answer.json())


def with_policy(deployer: Deployer, **settings: Any) -> None:
    prepare_networks(deployer.docker, deployer.settings.model_copy(update=settings))


async def test_functions_reach_the_internet_but_not_this_host_or_its_networks(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    bridge_gateway = deployer.docker.network_gateway(deployer.settings.function_network)
    host = host_address()
    endpoint = await hostile_endpoint(gateway, deployer)
    with listener(bridge_gateway) as on_gateway, listener(host) as on_host:
        for target, port in [
            (bridge_gateway, on_gateway),
            (f"::ffff:{bridge_gateway}", on_gateway),  # the IPv4-mapped IPv6 form
            (host, on_host),
        ]:
            answer = await reach(endpoint, target, port)
            assert answer["connected"] is False, (target, answer)
        # Positive control: a package index on the internet, by name (DNS works too).
        assert (await reach(endpoint, "pypi.org", 443))["connected"] is True
        # The admin's allow-list opens exactly the entry it names.
        try:
            with_policy(deployer, egress_allow=[f"{bridge_gateway}:{on_gateway}"])
            assert (await reach(endpoint, bridge_gateway, on_gateway))["connected"] is True
            assert (await reach(endpoint, host, on_host))["connected"] is False
            # Deny-all: not even the internet (name resolution still answers).
            with_policy(deployer, egress_policy="none")
            assert (await reach(endpoint, "pypi.org", 443))["connected"] is False
            assert (await reach(endpoint, bridge_gateway, on_gateway))["connected"] is False
        finally:
            prepare_networks(deployer.docker, deployer.settings)


async def test_lost_rules_come_back_on_the_next_apply(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    """What a reboot or a dockerd restart can do to the firewall, and the reconciler's fix."""
    bridge_gateway = deployer.docker.network_gateway(deployer.settings.function_network)
    bridge = deployer.docker.bridge_name(deployer.settings.function_network)
    endpoint = await hostile_endpoint(gateway, deployer)
    with listener(bridge_gateway) as port:
        for argv in (
            ["iptables", "-w", "-D", "INPUT", "-i", bridge, "-j", egress.INPUT_CHAIN],
            ["iptables", "-w", "-F", egress.FN_CHAIN],
        ):
            await asyncio.to_thread(subprocess.run, argv, check=True)
        try:
            assert (await reach(endpoint, bridge_gateway, port))["connected"] is True
        finally:
            prepare_networks(deployer.docker, deployer.settings)
        assert (await reach(endpoint, bridge_gateway, port))["connected"] is False
