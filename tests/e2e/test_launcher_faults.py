"""The launcher as a supervisor: a crashed service comes back while the rest keeps
serving, and stopping the platform mid-build leaves no process and, once it is
started again, no container behind."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from launcher.harness import Platform, remove_labelled, running_platform
from launcher.processes import descendants
from tests.integration.conftest import zip_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
SLOW_INSTALL = {
    "name": "slow",
    "version": "1.0.0",
    "scripts": {"install": "node -e 'setTimeout(() => {}, 120000)'"},
}
SERVER = b"require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)\n"


@pytest.fixture
def label() -> Iterator[str]:
    name = f"e2e-{secrets.token_hex(4)}"
    yield name
    remove_labelled(name)


def service_pid(platform: Platform, marker: str) -> int | None:
    for pid in descendants(platform.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            return pid
    return None


def processes_of(label: str) -> list[int]:
    """Every live process on this machine started for the platform labelled `label`."""
    found = []
    needle = f"VEIL_INSTANCE_LABEL={label}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_crashed_service_is_started_again_while_the_rest_serves(
    tmp_path: Path, label: str
) -> None:
    with running_platform(tmp_path, label) as platform:
        analytics = service_pid(platform, "analytics.app")
        assert analytics is not None
        os.kill(analytics, signal.SIGKILL)
        with httpx.Client(timeout=5) as client:
            # The control plane keeps answering meanwhile.
            assert client.get(f"{platform.gateway}/healthz").status_code == 200
            deadline = time.monotonic() + 30
            again = None
            while again in (None, analytics) and time.monotonic() < deadline:
                time.sleep(0.2)
                again = service_pid(platform, "analytics.app")
            assert again not in (None, analytics)
        assert platform.process.poll() is None  # the launcher did not give up
    log = platform.log.read_text()
    assert "analytics exited with code -9; starting it again" in log, log[-2000:]


def test_stopping_mid_build_leaves_nothing_behind(tmp_path: Path, label: str) -> None:
    client = docker.from_env()
    sandboxes = {"label": [f"veil.instance={label}", "veil.role=build"]}
    try:
        with running_platform(tmp_path, label, remove_containers=False) as platform:
            with httpx.Client(base_url=platform.gateway, timeout=30) as api:
                tokens = api.post(
                    "/api/v1/auth/signup",
                    json={
                        "email": "slow@example.com",
                        "password": "correct horse",
                        "role": "developer",
                    },
                ).json()
                auth = {"Authorization": f"Bearer {tokens['access_token']}"}
                created = api.post("/api/v1/apis", json={"name": "Slow"}, headers=auth).json()
                files = {"package.json": json.dumps(SLOW_INSTALL).encode(), "index.js": SERVER}
                uploaded = api.post(
                    f"/api/v1/apis/{created['id']}/upload",
                    headers=auth,
                    files={"file": ("app.zip", zip_bytes(files))},
                )
                assert uploaded.status_code == 201, uploaded.text
                assert api.post(f"/api/v1/apis/{created['id']}/deploy", headers=auth).is_success
            deadline = time.monotonic() + 60
            while not client.containers.list(filters=sandboxes):
                assert time.monotonic() < deadline, "the build never reached its sandbox"
                time.sleep(0.2)
            left_behind = [c.id for c in client.containers.list(filters=sandboxes)]
            platform.process.send_signal(signal.SIGTERM)
            assert platform.process.wait(timeout=60) == 0
        assert processes_of(label) == []  # the job process of the build too
        # Started again on the same data: the dead build's sandbox is gone at once.
        with running_platform(tmp_path, label):
            remaining = {c.id for c in client.containers.list(all=True, filters=sandboxes)}
            assert remaining.isdisjoint(left_behind), remaining
    finally:
        client.close()
