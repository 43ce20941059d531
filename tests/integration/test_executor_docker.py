"""The executor on a real Docker Engine: build, hardened run, readiness, failure reasons."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from redis.asyncio import Redis

from executor.deploy import Deployer, container_name
from executor.docker_adapter import deployment_container
from executor.reconciler import Reconciler
from shared.models import Deployment
from tests.integration.conftest import (
    SAMPLE_APP,
    create_api,
    deploy_and_wait,
    endpoint_of,
    signup,
    upload,
    zip_bytes,
)

pytestmark = pytest.mark.docker
HOSTILE = (Path(__file__).parents[1] / "fixtures" / "hostile_app.py").read_bytes()

CRASHING_APP = b"import sys\nprint('boom: missing config', flush=True)\nsys.exit(3)\n"


async def test_sample_app_runs_hardened_and_answers(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    status = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP})
    )
    assert status["status"] == "running", status
    assert status["version"] == 1

    deployment_id = status["deployment_id"]
    container = deployment_container(docker_client, deployment_id)
    host = container.attrs["HostConfig"]
    settings = deployer.settings
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] == settings.pids_limit
    assert host["Memory"] == settings.memory_limit_mb * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]
    # The start-up CPU boost is over: the container runs at its own limit.
    assert host["CpuQuota"] == int(settings.cpu_limit * host["CpuPeriod"])
    assert host["Init"] is True
    assert host["Privileged"] is False
    assert "/tmp" in host["Tmpfs"]
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]}["nofile"] == settings.nofile_limit
    assert host["LogConfig"]["Config"]["max-size"] == "1m"
    assert not any("docker.sock" in b for b in host.get("Binds") or [])
    assert container.attrs["Config"]["User"] == "10001:10001"
    labels = container.labels
    assert labels["veil.api_id"] == api["id"]
    assert labels["veil.deployment_id"] == deployment_id
    env = container.attrs["Config"]["Env"]
    platform = [e for e in env if e.startswith(("VEIL_", "JWT", "DATABASE"))]
    assert [e.partition("=")[0] for e in platform] == ["VEIL_GATEWAY_SECRET"]  # its own
    for secret in (settings.jwt_secret, settings.service_token, settings.secrets_key):
        assert secret.get_secret_value() not in "\n".join(env)

    # It answers on the endpoint recorded for the data plane.
    endpoint = await endpoint_of(deployer, deployment_id)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{endpoint}/hi")
    assert answer.json() == {"hello": "veil", "path": "/hi"}
    # The app cannot write to its root filesystem.
    result = container.exec_run(["python3", "-c", "open('/app/x', 'w')"], user="10001:10001")
    assert result.exit_code != 0


async def test_crash_at_start_fails_with_reason_and_log_tail(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    status = await deploy_and_wait(gateway, deployer, alice, api["id"], CRASHING_APP, "main.py")
    assert status["status"] == "failed"
    assert "exited with code 3" in status["error"]
    assert "boom: missing config" in status["log_tail"]
    # The failed container is gone; the API has no route.
    containers = docker_client.containers.list(
        all=True, filters={"label": [f"veil.instance={instance_label}", "veil.deployment_id"]}
    )
    assert containers == []
    assert status["active_deployment_id"] is None


async def test_build_error_fails_with_the_build_log(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    archive = zip_bytes(
        {
            "main.py": SAMPLE_APP,
            "requirements.txt": b"this-package-does-not-exist-veil-test==0.0.1\n",
        }
    )
    status = await deploy_and_wait(gateway, deployer, alice, api["id"], archive)
    assert status["status"] == "failed"
    assert status["error"].startswith("build failed")
    assert "this-package-does-not-exist-veil-test" in status["log_tail"]


async def test_redeploy_switches_route_and_removes_the_old_container(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    first = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP})
    )
    second = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP + b"\n# v2\n"})
    )
    assert second["status"] == "running"
    assert second["version"] == 2
    assert second["active_deployment_id"] == second["deployment_id"]
    with pytest.raises(docker.errors.NotFound):
        deployment_container(docker_client, first["deployment_id"])
    assert deployment_container(docker_client, second["deployment_id"]).status == "running"


async def _sse_events(
    gateway: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    async with gateway.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    return events


async def test_build_log_and_status_feed_replays_to_late_watchers(
    gateway: httpx.AsyncClient, deployer: Deployer, redis: Redis
) -> None:
    alice = await signup(gateway)
    bob = await signup(gateway)
    api = await create_api(gateway, alice)
    status = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP})
    )
    url = f"/api/v1/apis/{api['id']}/deployments/{status['deployment_id']}/events"
    events = await _sse_events(gateway, url, alice)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "status"
    assert [d["status"] for k, d in events if k == "status"][1:] == ["building", "starting"]
    assert any("COPY src/ /app/" in d.get("line", "") for k, d in events if k == "log")
    assert events[-1] == ("end", {"status": "running"})

    history = await gateway.get(f"/api/v1/apis/{api['id']}/deployments", headers=alice)
    assert [d["status"] for d in history.json()["items"]] == ["running"]
    assert (await gateway.get(url, headers=bob)).status_code == 404
    other = f"/api/v1/apis/{api['id']}/deployments/not-a-deployment/events"
    assert (await gateway.get(other, headers=alice)).status_code == 404

    # Once the live feed has expired, the deployment row still answers.
    await redis.delete(f"veil:deployments:{status['deployment_id']}:feed")
    assert (await _sse_events(gateway, url, alice))[-1] == ("end", {"status": "running"})


async def test_reconciler_restarts_dead_containers_and_removes_orphans(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:

    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    status = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": HOSTILE})
    )
    deployment_id = status["deployment_id"]
    deployer.settings.restart_backoff_seconds = 0
    reconciler = Reconciler(deployer, deployer.sessions)

    # An orphan: a Veil container of this instance whose deployment nobody knows.
    orphan = docker_client.containers.run(
        deployer.settings.python_base_image,
        ["sleep", "300"],
        detach=True,
        labels={
            "veil.platform": "veil",
            "veil.instance": instance_label,
            "veil.deployment_id": "no-such-deployment",
        },
    )
    # Killed from outside (an admin, a node going away): restarted, not the app's fault.
    deployment_container(docker_client, deployment_id).kill()

    report = await reconciler.run_once()
    assert report.removed_orphans == [orphan.id]
    assert report.restarted == [deployment_id]
    assert (await restarts(deployer, deployment_id)) == 0
    endpoint = await endpoint_of(deployer, deployment_id)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{endpoint}/again")).status_code == 200
    assert (await reconciler.run_once()).changed() is False  # converged: a no-op now

    # Stopped the way the engine stops it when it goes down (SIGTERM), and then
    # gone altogether: both restarted at once, neither counted against the app.
    deployment_container(docker_client, deployment_id).stop(timeout=5)
    assert (await reconciler.run_once()).restarted == [deployment_id]
    deployment_container(docker_client, deployment_id).remove(force=True)
    report = await reconciler.run_once()
    assert report.restarted == [deployment_id]
    assert deployment_container(docker_client, deployment_id).status == "running"
    assert (await restarts(deployer, deployment_id)) == 0

    # The app's own crash counts; after running long enough the count is forgiven.
    await crash(deployer, deployment_id)
    assert (await reconciler.run_once()).restarted == [deployment_id]
    assert (await restarts(deployer, deployment_id)) == 1
    deployer.settings.restart_reset_seconds = 0
    assert (await reconciler.run_once()).changed() is False
    assert (await restarts(deployer, deployment_id)) == 0
    deployer.settings.restart_reset_seconds = 600

    # It keeps crashing: after max_restarts it is crash-looping and off the data plane.
    deployer.settings.max_restarts = 3
    crashes = 0
    while crashes < 6:
        await crash(deployer, deployment_id)
        crashes += 1
        report = await reconciler.run_once()
        if report.crash_looping:
            break
    assert report.crash_looping == [deployment_id]
    assert crashes == 4  # restarts 3 of 3 used up: the next crash is final
    final = (await gateway.get(f"/api/v1/apis/{api['id']}/status", headers=alice)).json()
    assert final["status"] == "crash-looping"
    assert "crash-looping" in final["error"]
    assert "last: exit 3" in final["error"]  # the real exit, never "container missing"
    assert final["active_deployment_id"] is None
    assert final["restart_count"] == 3
    last = final["last_exit"]
    assert (last["description"], last["exit_code"], last["oom_killed"]) == ("exit 3", 3, False)
    assert last["at"] is not None


async def restarts(deployer: Deployer, deployment_id: str) -> int:
    async with deployer.sessions() as session:
        row = await session.get(Deployment, deployment_id)
        assert row is not None
        return int(row.restart_count)


async def crash(deployer: Deployer, deployment_id: str) -> None:
    """The app exits by itself (code 3) and its container is seen stopped."""
    endpoint = await endpoint_of(deployer, deployment_id)
    async with httpx.AsyncClient(timeout=5) as client:
        with contextlib.suppress(httpx.HTTPError):
            await client.get(f"{endpoint}/crash", params={"code": "3"})
    client_ = docker.from_env()
    try:
        for _ in range(100):
            if deployment_container(client_, deployment_id).status != "running":
                return
            await asyncio.sleep(0.05)
    finally:
        client_.close()
    raise AssertionError("the app did not exit")


async def test_interrupted_deploy_is_resumed_without_duplicates(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:
    """The executor died after starting the container but before the route switch."""

    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    await upload(gateway, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP}))
    deployment_id = (await gateway.post(f"/api/v1/apis/{api['id']}/deploy", headers=alice)).json()[
        "deployment_id"
    ]
    async with deployer.sessions() as session:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None
        deployment.status = "starting"  # as the dead job left it
        await session.commit()
    # ...and its half-started container is still there.
    docker_client.containers.run(
        deployer.settings.python_base_image,
        ["sleep", "300"],
        detach=True,
        name=container_name(deployer.settings, deployment_id),
        labels={
            "veil.platform": "veil",
            "veil.instance": instance_label,
            "veil.deployment_id": deployment_id,
        },
    )
    resumed: list[str] = []
    report = await Reconciler(deployer, deployer.sessions, resumed.append).run_once(
        resume_interrupted=True
    )
    assert report.resumed == resumed == [deployment_id]
    assert report.removed_orphans == []  # in progress: it belongs to its (resumed) job
    await deployer.run(deployment_id)  # what the re-queued job does
    status = (await gateway.get(f"/api/v1/apis/{api['id']}/status", headers=alice)).json()
    assert status["status"] == "running"
    containers = docker_client.containers.list(
        all=True, filters={"label": [f"veil.instance={instance_label}", "veil.deployment_id"]}
    )
    assert [c.name for c in containers] == [container_name(deployer.settings, deployment_id)]


async def test_rollback_reuses_kept_images_and_old_ones_are_pruned(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    instance_label: str,
    redis: Redis,
) -> None:
    deployer.settings.keep_images = 2
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    for n in (1, 2, 3):
        code = zip_bytes({"main.py": SAMPLE_APP + f"\n# v{n}\n".encode()})
        assert (await deploy_and_wait(gateway, deployer, alice, api["id"], code))[
            "status"
        ] == "running"

    def kept() -> list[str]:
        images = docker_client.images.list(
            filters={"label": [f"veil.instance={instance_label}", f"veil.api_id={api['id']}"]}
        )
        # The tag names the version: veil-fn/<api id>:v<N>.
        return sorted(tag.rpartition(":v")[2] for image in images for tag in image.tags)

    assert kept() == ["2", "3"]

    async def rollback(version: int) -> dict[str, Any]:
        url = f"/api/v1/apis/{api['id']}/rollback"
        response = await gateway.post(url, json={"version": version}, headers=alice)
        assert response.status_code == 202
        await deployer.run(response.json()["deployment_id"])
        return dict((await gateway.get(f"/api/v1/apis/{api['id']}/status", headers=alice)).json())

    to_two = await rollback(2)
    assert to_two["status"] == "running"
    assert to_two["version"] == 2
    log = deployer.settings.data_dir / "logs" / "builds" / f"{to_two['deployment_id']}.log"
    assert log.read_text().startswith("Reusing the image of version 2")
    to_one = await rollback(1)  # pruned earlier: built again
    assert to_one["status"] == "running"
    assert "Reusing" not in (log.parent / f"{to_one['deployment_id']}.log").read_text()
    # The newest two versions plus the one now serving.
    assert kept() == ["1", "2", "3"]


async def test_per_api_settings_reach_the_container(
    gateway: httpx.AsyncClient,
    deployer: Deployer,
    docker_client: docker.DockerClient,
    redis: Redis,
) -> None:
    alice = await signup(gateway)
    api = await create_api(gateway, alice)
    settings = {"memory_mb": 128, "cpus": 0.25, "env": {"GREETING": "hi"}}
    put = await gateway.put(f"/api/v1/apis/{api['id']}/settings", json=settings, headers=alice)
    assert put.status_code == 200
    status = await deploy_and_wait(
        gateway, deployer, alice, api["id"], zip_bytes({"main.py": SAMPLE_APP})
    )
    container = deployment_container(docker_client, status["deployment_id"])
    host = container.attrs["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 128 * 1024 * 1024
    assert (host["CpuQuota"], host["CpuPeriod"]) == (25_000, 100_000)
    env = container.attrs["Config"]["Env"]
    assert "GREETING=hi" in env
    assert "PORT=8080" in env
