"""A build worker (and the executor API) killed in the middle of a deploy: the
deployment is worked on by one job at a time (its lease fences every state
change; the job process dies with its worker), the restarted worker resumes it,
and it ends running with exactly one container, no sandbox left, and a retry of
the request answering the same deployment."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import docker
import httpx
import pytest

from testkit.platform import Platform, running_platform
from tests.e2e.support import deploy_node_app, developer
from tests.e2e.test_launcher_faults import label, service_pid

__all__ = ["label"]  # the fixture
pytestmark = [pytest.mark.e2e, pytest.mark.docker]
ROUNDS = 2  # each round a fresh deploy killed at the same point
PAUSE_SECONDS = 6  # at the failpoint; a job that outlived its kill would go on after it
PACKAGE = {"name": "slowish", "version": "1.0.0", "scripts": {"install": "sleep 3"}}


def wait_for(what: str, check: object, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def kill(platform: Platform, marker: str) -> None:
    pid = service_pid(platform, marker)
    assert pid is not None, marker
    os.kill(pid, signal.SIGKILL)


def settle_and_check(
    platform: Platform,
    api: httpx.Client,
    auth: dict[str, str],
    api_id: str,
    deployment: str,
    key: str,
    client: docker.DockerClient,
    label: str,
) -> None:
    def status() -> dict[str, object]:
        answer: dict[str, object] = api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()
        return answer

    wait_for("the resumed deploy", lambda: status()["status"] in ("running", "failed"))
    final = status()
    assert final["status"] == "running", final
    assert final["deployment_id"] == deployment
    containers = client.containers.list(
        all=True, filters={"label": [f"veil.instance={label}", f"veil.deployment_id={deployment}"]}
    )
    assert [c.status for c in containers] == ["running"], containers
    sandboxes = client.containers.list(
        all=True, filters={"label": [f"veil.instance={label}", "veil.role=build"]}
    )
    assert sandboxes == []
    with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
        slug = api.get(f"/api/v1/apis/{api_id}", headers=auth).json()["slug"]
        assert plane.get(f"/{slug}/", headers=auth).text == "ok"
    again = api.post(f"/api/v1/apis/{api_id}/deploy", headers={**auth, "Idempotency-Key": key})
    assert again.json()["deployment_id"] == deployment
    assert again.json()["replayed"] is True


@pytest.mark.parametrize("moment", ["mid-build", "container-started"])
def test_a_worker_killed_mid_deploy_leaves_one_deployment_serving(
    tmp_path: Path, label: str, moment: str
) -> None:
    env = {
        "VEIL_BCRYPT_ROUNDS": "4",
        "VEIL_FAILPOINTS": "container-started",
        "VEIL_FAILPOINT_SECONDS": str(PAUSE_SECONDS),
    }
    client = docker.from_env()
    try:
        with (
            running_platform(tmp_path, label, env) as platform,
            httpx.Client(base_url=platform.gateway, timeout=30) as api,
        ):
            auth = developer(api, "dev@example.com")
            building = {"label": [f"veil.instance={label}", "veil.role=build"]}
            for round_ in range(ROUNDS):
                failpoint = Path(platform.data_dir) / "failpoints" / "container-started"
                if moment == "mid-build":
                    failpoint.parent.mkdir(parents=True, exist_ok=True)
                    failpoint.touch()  # spent: this round dies in its sandbox instead
                else:
                    failpoint.unlink(missing_ok=True)  # armed again for this round
                key = f"{moment}-{round_}"
                name = f"Round {moment} {round_}"
                # A package of its own each time: a cached install would skip the sandbox.
                package = {**PACKAGE, "description": name}
                api_id, deployment = deploy_node_app(api, auth, name, package, key)
                if moment == "mid-build":
                    wait_for("the build sandbox", lambda: client.containers.list(filters=building))
                    kill(platform, "executor.worker")
                else:
                    wait_for("the failpoint", failpoint.exists)
                    time.sleep(0.3)
                    kill(platform, "executor.worker")
                    kill(platform, "executor.app")  # and the executor API beside it
                killed = time.monotonic()
                settle_and_check(platform, api, auth, api_id, deployment, key, client, label)
                # Past the point where the killed job would have gone on: still so.
                time.sleep(max(0.0, killed + PAUSE_SECONDS + 2 - time.monotonic()))
                settle_and_check(platform, api, auth, api_id, deployment, key, client, label)
    finally:
        client.close()
