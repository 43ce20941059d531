"""Redeploy under traffic: every call through the data plane succeeds, and traffic moves."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.platform import Platform, running_platform
from tests.integration.conftest import zip_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

VERSIONED_APP = """\
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real apps do

    def do_GET(self):
        body = json.dumps({{"version": "{version}"}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path, f"e2e-{secrets.token_hex(4)}") as started:
        yield started


def _wait_running(api: httpx.Client, api_id: str, auth: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()
        if status["status"] in ("running", "failed"):
            assert status["status"] == "running", status
            return
        time.sleep(0.1)
    pytest.fail("deployment did not finish")


def test_redeploy_under_load_loses_no_call(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway, timeout=30) as api:
        tokens = api.post(
            "/api/v1/auth/signup", json={"email": "zd@example.com", "password": "correct horse"}
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        created = api.post("/api/v1/apis", json={"name": "Versions"}, headers=auth).json()
        api_id, slug = created["id"], created["slug"]

        def ship(version: str) -> None:
            code = zip_bytes({"main.py": VERSIONED_APP.format(version=version).encode()})
            uploaded = api.post(
                f"/api/v1/apis/{api_id}/upload", headers=auth, files={"file": ("app.zip", code)}
            )
            assert uploaded.status_code == 201, uploaded.text
            assert api.post(f"/api/v1/apis/{api_id}/deploy", headers=auth).status_code == 202
            _wait_running(api, api_id, auth)

        ship("one")
        seen: Counter[str] = Counter()
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
                while not stop.is_set():
                    response = plane.get(f"/{slug}/", headers=auth)
                    seen[
                        response.json()["version"]
                        if response.status_code == 200
                        else f"HTTP {response.status_code}"
                    ] += 1

        caller = threading.Thread(target=hammer)
        caller.start()
        try:
            time.sleep(0.5)
            ship("two")
            deadline = time.monotonic() + 10
            while seen["two"] < 50 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3)  # past the old container's drain and stop
        finally:
            stop.set()
            caller.join(timeout=30)
    failures = {k: v for k, v in seen.items() if k not in ("one", "two")}
    assert failures == {}, seen
    assert seen["one"] > 0
    assert seen["two"] >= 50, seen
