"""Suspending an API on a real Docker Engine: the stop job it queues removes the
container, and the owner can start it again only once the suspension is lifted."""

from __future__ import annotations

import asyncio

import docker
import httpx
import pytest
from redis import Redis as SyncRedis
from rq import Queue

from executor.deploy import Deployer
from gateway.build_queue import STOP_JOB
from shared.settings import GatewaySettings
from tests.integration.admin_support import admin_headers
from tests.integration.conftest import (
    SAMPLE_APP,
    assert_error,
    create_api,
    deploy_and_wait,
    endpoint_of,
    signup,
    zip_bytes,
)

pytestmark = pytest.mark.docker


async def _run_stop_jobs(settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the queued stop jobs as the executor's rq worker would, with its settings
    from the environment."""
    for name, value in {
        "VEIL_DATABASE_URL": settings.resolved_database_url,
        "VEIL_REDIS_URL": settings.redis_url,
        "VEIL_DATA_DIR": str(settings.data_dir),
        "VEIL_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "VEIL_SERVICE_TOKEN": settings.service_token.get_secret_value(),
        "VEIL_SECRETS_KEY": settings.secrets_key.get_secret_value(),
    }.items():
        monkeypatch.setenv(name, value)
    connection = SyncRedis.from_url(settings.redis_url)
    try:
        jobs = [
            job
            for job in Queue(settings.build_queue, connection=connection).get_jobs()
            if job.func_name == STOP_JOB
        ]
        for job in jobs:  # each runs its own event loop, as in the worker's fork
            await asyncio.to_thread(job.perform)
        return len(jobs)
    finally:
        connection.close()


async def test_suspension_stops_the_container_until_lifted(
    gateway: httpx.AsyncClient,
    gateway_settings: GatewaySettings,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin, _ = await admin_headers(gateway, deployer.sessions)
    dev = await signup(gateway)
    api = await create_api(gateway, dev)
    base = f"/api/v1/apis/{api['id']}"
    status = await deploy_and_wait(
        gateway, deployer, dev, api["id"], zip_bytes({"main.py": SAMPLE_APP})
    )
    assert status["status"] == "running", status
    label = {"label": f"veil.deployment_id={status['deployment_id']}"}
    assert len(docker_client.containers.list(filters=label)) == 1

    suspended = await gateway.post(f"/api/v1/admin/apis/{api['id']}/suspend", headers=admin)
    assert suspended.status_code == 200, suspended.text
    assert await _run_stop_jobs(gateway_settings, monkeypatch) == 1
    assert docker_client.containers.list(all=True, filters=label) == []
    assert (await gateway.get(f"{base}/status", headers=dev)).json()["status"] == "stopped"
    assert_error(await gateway.post(f"{base}/start", headers=dev), 409, "api_suspended")

    lifted = await gateway.post(f"/api/v1/admin/apis/{api['id']}/unsuspend", headers=admin)
    assert lifted.status_code == 200, lifted.text
    # Lifting does not start it: its owner does, from the kept image.
    assert (await gateway.get(f"{base}/status", headers=dev)).json()["status"] == "stopped"
    started = await gateway.post(f"{base}/start", headers=dev)
    assert started.status_code == 202, started.text
    await deployer.run(started.json()["deployment_id"])
    endpoint = await endpoint_of(deployer, started.json()["deployment_id"])
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{endpoint}/again")).status_code == 200
