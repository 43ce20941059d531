"""Secrets on a real Docker Engine: decrypted into the container's environment, nowhere else."""

from __future__ import annotations

import docker
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update

from executor.deploy import Deployer
from executor.docker_adapter import deployment_container
from executor.reconciler import Reconciler
from shared.models import ApiSecret
from tests.integration.conftest import (
    create_api,
    deploy_and_wait,
    endpoint_of,
    signup,
    zip_bytes,
)

pytestmark = pytest.mark.docker

ENV_APP = b"""\
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        names = ("MY_SECRET", "GREETING", "SHADOWED")
        body = json.dumps({n: os.environ.get(n) for n in names}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""

SECRET = "s3cret value with spaces & symbols = ok"


async def _env_seen_by_app(deployer: Deployer, deployment_id: str) -> dict[str, str | None]:
    endpoint = await endpoint_of(deployer, deployment_id)
    async with httpx.AsyncClient() as client:
        seen: dict[str, str | None] = (await client.get(f"{endpoint}/")).json()
    return seen


async def test_secrets_reach_the_container_and_survive_a_recreate(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    base = f"/api/v1/apis/{api['id']}"
    settings = {"env": {"GREETING": "hi", "SHADOWED": "plain"}}
    assert (await gateway.put(f"{base}/settings", json=settings, headers=alice)).status_code == 200
    for name, value in (("MY_SECRET", SECRET), ("SHADOWED", "from-secret")):
        put = await gateway.put(f"{base}/secrets/{name}", json={"value": value}, headers=alice)
        assert put.status_code == 200

    status = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": ENV_APP})
    )
    assert status["status"] == "running", status
    deployment_id = status["deployment_id"]
    # A secret wins over a plain variable of the same name.
    expected = {"MY_SECRET": SECRET, "GREETING": "hi", "SHADOWED": "from-secret"}
    assert await _env_seen_by_app(deployer, deployment_id) == expected
    env = deployment_container(docker_client, deployment_id).attrs["Config"]["Env"]
    assert f"MY_SECRET={SECRET}" in env
    assert "PORT=8080" in env
    # The API's own gateway secret is the one VEIL_ variable an app sees.
    assert [e.partition("=")[0] for e in env if e.startswith("VEIL_")] == ["VEIL_GATEWAY_SECRET"]
    assert deployer.settings.secrets_key.get_secret_value() not in "\n".join(env)

    # The reconciler re-creates a vanished container with the secrets in it.
    deployer.settings.restart_backoff_seconds = 0
    deployment_container(docker_client, deployment_id).remove(force=True)
    report = await Reconciler(deployer, deployer.sessions).run_once()
    assert report.restarted == [deployment_id]
    assert (await _env_seen_by_app(deployer, deployment_id))["MY_SECRET"] == SECRET

    # The deploy log and the status never carry the value.
    log = deployer.settings.data_dir / "logs" / "builds" / f"{deployment_id}.log"
    assert SECRET not in log.read_text()
    status_text = (await gateway.get(f"{base}/status", headers=alice)).text
    assert SECRET not in status_text


async def test_a_secret_that_does_not_decrypt_fails_the_deploy_by_name(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    other = await create_api(gateway, alice, name="Other")
    for target in (api, other):
        put = await gateway.put(
            f"/api/v1/apis/{target['id']}/secrets/MY_SECRET",
            json={"value": f"{SECRET} {target['id']}"},
            headers=alice,
        )
        assert put.status_code == 200
    # Someone with database access copies the other API's ciphertext over this one's.
    async with deployer.sessions() as session:
        copied = await session.scalar(
            select(ApiSecret.ciphertext).where(ApiSecret.api_id == other["id"])
        )
        await session.execute(
            update(ApiSecret).where(ApiSecret.api_id == api["id"]).values(ciphertext=copied)
        )
        await session.commit()

    status = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": ENV_APP})
    )
    assert status["status"] == "failed", status
    assert "MY_SECRET" in status["error"]
    assert SECRET not in status["error"]
    assert status["active_deployment_id"] is None
    with pytest.raises(docker.errors.NotFound):
        deployment_container(docker_client, status["deployment_id"])
