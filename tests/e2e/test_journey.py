"""The whole platform as `make run` starts it: real processes, real Docker, real HTTP."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.integration.conftest import SAMPLE_APP, zip_bytes
from tests.services import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[dict[str, Any]]:
    label = f"e2e-{secrets.token_hex(4)}"
    ports = {
        name: free_port() for name in ("gateway", "dataplane", "executor", "analytics", "redis")
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEIL_")}
    env.update(
        {
            "VEIL_DATA_DIR": str(tmp_path / "data"),
            "VEIL_GATEWAY_PORT": str(ports["gateway"]),
            "VEIL_DATAPLANE_PORT": str(ports["dataplane"]),
            "VEIL_EXECUTOR_PORT": str(ports["executor"]),
            "VEIL_ANALYTICS_PORT": str(ports["analytics"]),
            "VEIL_REDIS_PORT": str(ports["redis"]),
            "VEIL_INSTANCE_LABEL": label,
            "VEIL_BCRYPT_ROUNDS": "4",
        }
    )
    log = (tmp_path / "platform.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "platform.log").read_text()
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{ports['dataplane']}/healthz").status_code == 200
                    and httpx.get(f"{gateway}/healthz").status_code == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("platform did not start:\n" + (tmp_path / "platform.log").read_text())
        time.sleep(1.0)  # the launcher prints its banner once every service answers
        yield {
            "gateway": gateway,
            "dataplane": f"http://127.0.0.1:{ports['dataplane']}",
            "process": process,
            "log": tmp_path / "platform.log",
        }
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        client = docker.from_env()
        for container in client.containers.list(
            all=True, filters={"label": f"veil.instance={label}"}
        ):
            container.remove(force=True)
        for image in client.images.list(filters={"label": f"veil.instance={label}"}):
            client.images.remove(image.id, force=True)
        client.close()


def test_upload_deploy_call_and_see_it_counted(platform: dict[str, Any]) -> None:
    with httpx.Client(base_url=platform["gateway"], timeout=30) as api:
        tokens = api.post(
            "/api/v1/auth/signup",
            json={"email": "dev@example.com", "password": "correct horse", "role": "developer"},
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        created = api.post("/api/v1/apis", json={"name": "Hello"}, headers=auth).json()
        api_id, slug = created["id"], created["slug"]
        uploaded = api.post(
            f"/api/v1/apis/{api_id}/upload",
            headers=auth,
            files={"file": ("hello.zip", zip_bytes({"main.py": SAMPLE_APP}))},
        )
        assert uploaded.status_code == 201, uploaded.text

        started = time.monotonic()
        deploy = api.post(f"/api/v1/apis/{api_id}/deploy", headers=auth)
        assert deploy.status_code == 202, deploy.text
        seen: list[str] = []
        while time.monotonic() - started < 120:
            status = api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()
            if not seen or seen[-1] != status["status"]:
                seen.append(status["status"])
            if status["status"] in ("running", "failed"):
                break
            time.sleep(0.1)
        assert status["status"] == "running", (status, platform["log"].read_text()[-3000:])
        assert seen[-1] == "running"

        with httpx.Client(base_url=platform["dataplane"], timeout=10) as plane:
            answer = plane.get(f"/{slug}/greet?x=1", headers=auth)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"hello": "veil", "path": "/greet?x=1"}
            assert answer.headers["x-request-id"]
            assert plane.get(f"/{slug}/greet").status_code == 401

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = api.get(f"/api/v1/apis/{api_id}/stats", headers=auth).json()
            if stats.get("calls") == 2:
                break
            time.sleep(0.2)
        assert stats["calls"] == 2, stats
        assert stats["client_errors"] == 1
        assert stats["latency_ms"]["p50"] is not None

        logs = api.get(f"/api/v1/apis/{api_id}/logs", headers=auth)
        assert logs.status_code == 200, logs.text

        stop = api.post(f"/api/v1/apis/{api_id}/stop", headers=auth)
        assert stop.status_code == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()["status"] == "stopped":
                break
            time.sleep(0.2)
        with httpx.Client(base_url=platform["dataplane"], timeout=10) as plane:
            after = plane.get(f"/{slug}/greet", headers=auth)
        assert after.status_code == 503, after.text

    # Ctrl-C stops everything the launcher started.
    process: subprocess.Popen[bytes] = platform["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
