"""A dockerd restart (live-restore off: every container stops): every API serves
again within seconds of the engine answering, and none of it counts as the app's
crash (three restarts used to leave healthy APIs at 3 of their 5 restarts).

The engine is stopped with SIGTERM, as a service manager would, and started again
by `scripts/setup.sh`, the way `make test` started it; whatever happens, the
engine is running again when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from testkit.platform import running_platform
from tests.e2e.support import deploy_python_app, developer
from tests.e2e.test_launcher_faults import label

__all__ = ["label"]
pytestmark = [pytest.mark.e2e, pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]
PIDFILE = Path("/var/run/docker.pid")
RESTARTS = 2


def engine_pid() -> int:
    try:
        pid = int(PIDFILE.read_text().strip())
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        pytest.skip("no dockerd of this machine's own to restart")
    if name != "dockerd":
        pytest.skip("no dockerd of this machine's own to restart")
    return pid


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def restart_engine() -> float:
    """Stop dockerd, start it as setup does; seconds until it answered again."""
    pid = engine_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.1)
    started = time.monotonic()
    subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], check=True, capture_output=True)
    while not engine_answers():
        assert time.monotonic() < started + 60, "dockerd did not come back"
        time.sleep(0.1)
    return time.monotonic() - started


def test_an_engine_restart_brings_every_api_back_uncounted(tmp_path: Path, label: str) -> None:
    engine_pid()  # skips where the engine is not ours to restart
    try:
        with (
            running_platform(tmp_path, label, {"VEIL_BCRYPT_ROUNDS": "4"}) as platform,
            httpx.Client(base_url=platform.gateway, timeout=30) as api,
            httpx.Client(base_url=platform.dataplane, timeout=2) as plane,
        ):
            auth = developer(api, "engine@example.com")
            apis = [deploy_python_app(api, auth, f"E{i}") for i in range(2)]

            def serving(slug: str) -> bool:
                try:
                    return plane.get(f"/{slug}/x", headers=auth).status_code == 200
                except httpx.HTTPError:
                    return False

            for round_ in range(RESTARTS + 1):
                if round_:
                    answered_after = restart_engine()
                back = time.monotonic()
                waiting = {a["slug"] for a in apis}
                while waiting:
                    assert time.monotonic() < back + 60, f"not serving again: {waiting}"
                    waiting = {slug for slug in waiting if not serving(slug)}
                    time.sleep(0.1)
                if round_:
                    print(
                        f"\n[engine restart {round_}] engine answered after {answered_after:.1f}"
                        f" s, every API serving {time.monotonic() - back:.1f} s later"
                    )
            for created in apis:
                status = api.get(f"/api/v1/apis/{created['id']}/status", headers=auth).json()
                assert status["status"] == "running", status
                assert status["restart_count"] == 0, status  # the engine's doing, not the app's
                assert status["last_exit"]["description"] == "exit 143", status
    finally:
        if not engine_answers():
            subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], check=False)
