"""The launcher as a supervisor: a crashed service comes back while the rest keeps
serving, and stopping the platform mid-build leaves no process and, once it is
started again, no container behind."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from launcher.processes import descendants
from testkit.platform import Platform, remove_labelled, running_platform
from tests.e2e.support import deploy_node_app, deploy_python_app, developer

pytestmark = [pytest.mark.e2e, pytest.mark.docker]
SLOW_INSTALL = {
    "name": "slow",
    "version": "1.0.0",
    "scripts": {"install": "node -e 'setTimeout(() => {}, 120000)'"},
}


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
                auth = developer(api, "slow@example.com")
                deploy_node_app(api, auth, "Slow", SLOW_INSTALL)
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


def test_stopping_the_data_plane_under_load_loses_no_answered_call(
    tmp_path: Path, label: str
) -> None:
    """In-flight calls finish, no answer is cut, and every call that was answered is
    counted; the launcher then starts the data plane again."""
    with (
        running_platform(tmp_path, label, {"VEIL_BCRYPT_ROUNDS": "4"}) as platform,
        httpx.Client(base_url=platform.gateway, timeout=30) as api,
    ):
        auth = developer(api, "load@example.com")
        created = deploy_python_app(api, auth, "Loaded")
        deadline = time.monotonic() + 90
        while api.get(f"/api/v1/apis/{created['id']}/status", headers=auth).json()["status"] != (
            "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        answered: list[int] = []
        refused: list[str] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
                while not stop.is_set():
                    try:
                        answer = plane.get(f"/{created['slug']}/x", headers=auth)
                    except httpx.HTTPError as exc:  # not answered at all: no count expected
                        refused.append(type(exc).__name__)
                        time.sleep(0.05)
                        continue
                    assert answer.json()["path"] == "/x"  # whole, never cut
                    answered.append(answer.status_code)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        plane_pid = service_pid(platform, "granian")
        assert plane_pid is not None
        os.kill(plane_pid, signal.SIGTERM)
        time.sleep(4)  # down, then started again by the launcher
        stop.set()
        for thread in threads:
            thread.join()
        assert set(answered) == {200}, Counter(answered)
        assert refused, "the data plane never went away"
        # Every answered call is stored once (the events of the stopped plane too).
        database = sqlite3.connect(platform.data_dir / "veil.db")
        try:
            deadline = time.monotonic() + 30
            while True:
                (stored,) = database.execute(
                    "SELECT count(*) FROM executions WHERE api_id = ?", (created["id"],)
                ).fetchone()
                if stored >= len(answered) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        finally:
            database.close()
        assert stored == len(answered), (stored, len(answered))
