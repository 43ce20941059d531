"""The whole platform as `make run` starts it: real processes, real Docker, real HTTP."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from redis import Redis
from redis.exceptions import AuthenticationError

from testkit.platform import Platform, running_platform, stop
from tests.integration.conftest import SAMPLE_APP, zip_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.docker]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform for the module: starting one costs seconds, and the Redis check
    changes nothing the journey relies on (the journey comes last: it stops it)."""
    label = f"e2e-{secrets.token_hex(4)}"
    workdir = tmp_path_factory.mktemp("journey")
    with running_platform(workdir, label, {"VEIL_BCRYPT_ROUNDS": "4"}) as started:
        yield started


def test_the_platform_s_redis_refuses_clients_without_its_password(platform: Platform) -> None:
    """Anyone on the host could otherwise queue builds or append billable events."""
    stranger = Redis(host="127.0.0.1", port=platform.redis_port, socket_timeout=2)
    try:
        with pytest.raises(AuthenticationError):
            stranger.xadd("veil:executions", {"forged": "1"})
    finally:
        stranger.close()
    config = platform.data_dir / "redis" / "redis.conf"
    assert config.stat().st_mode & 0o777 == 0o600  # the password is in no command line


def test_upload_deploy_call_and_see_it_counted(platform: Platform) -> None:
    with httpx.Client(base_url=platform.gateway, timeout=30) as api:
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
        # Watch the build live: connected while the worker builds, ends with the outcome.
        feed = f"/api/v1/apis/{api_id}/deployments/{deploy.json()['deployment_id']}/events"
        events: list[tuple[str, dict[str, str]]] = []
        with api.stream("GET", feed, headers=auth) as stream:
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
        assert any(kind == "log" for kind, _ in events), events
        assert events[-1] == ("end", {"status": "running"}), events
        seen: list[str] = []
        while time.monotonic() - started < 120:
            status = api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()
            if not seen or seen[-1] != status["status"]:
                seen.append(status["status"])
            if status["status"] in ("running", "failed"):
                break
            time.sleep(0.1)
        assert status["status"] == "running", (status, platform.log.read_text()[-3000:])
        assert seen[-1] == "running"

        with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
            answer = plane.get(f"/{slug}/greet?x=1", headers=auth)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"hello": "veil", "path": "/greet?x=1"}
            assert answer.headers["x-request-id"]
            assert plane.get(f"/{slug}/greet").status_code == 401

        # A consumer finds it in the marketplace, subscribes and calls it with the key.
        key = _consumer_subscribes(api, auth, api_id)
        with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
            answer = plane.get(f"/{slug}/as-consumer", headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text
            assert answer.headers["ratelimit-policy"].startswith('"burst";q=5;w=1')

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = api.get(f"/api/v1/apis/{api_id}/stats", headers=auth).json()
            if stats.get("calls") == 3:
                break
            time.sleep(0.2)
        assert stats["calls"] == 3, stats
        assert stats["client_errors"] == 1
        assert stats["latency_ms"]["p50"] is not None

        _rate_limit_and_revocation_hold_across_workers(api, platform, slug, key)

        logs = api.get(f"/api/v1/apis/{api_id}/logs", headers=auth)
        assert logs.status_code == 200, logs.text

        # The owner restarts in place; the API answers again afterwards.
        restarted = api.post(f"/api/v1/apis/{api_id}/restart", headers=auth)
        assert restarted.status_code == 200, restarted.text
        with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
            assert plane.get(f"/{slug}/again", headers=auth).status_code == 200

        # An admin (made with the CLI, never by sign-up) sees live usage and stops it.
        admin_env = {
            **os.environ,
            "VEIL_DATA_DIR": str(platform.data_dir),
            "VEIL_ADMIN_PASSWORD": "admin password 123",
            "VEIL_BCRYPT_ROUNDS": "4",
        }
        made = subprocess.run(
            [sys.executable, "-m", "gateway.admin.create_admin", "root@example.com"],
            env=admin_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        admin_login = api.post(
            "/api/v1/auth/login",
            json={"email": "root@example.com", "password": "admin password 123"},
        )
        admin = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
        assert api.get("/api/v1/admin/deployments", headers=auth).status_code == 403
        listing = api.get("/api/v1/admin/deployments", headers=admin)
        assert listing.status_code == 200, listing.text
        mine = next(d for d in listing.json()["items"] if d["api_id"] == api_id)
        assert mine["status"] == "running"
        assert mine["container"]["running"] is True
        assert mine["container"]["memory_bytes"] > 0
        assert mine["container"]["memory_limit_bytes"] == 256 * 1024 * 1024
        assert mine["container"]["cpu_percent"] >= 0

        stopping = api.post(f"/api/v1/admin/apis/{api_id}/stop", headers=admin)
        assert stopping.status_code == 202
        audit_log = api.get("/api/v1/admin/audit-log", headers=admin).json()["items"]
        assert [(e["action"], e["target_id"]) for e in audit_log] == [("api.stop", api_id)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()["status"] == "stopped":
                break
            time.sleep(0.2)
        with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
            after = plane.get(f"/{slug}/greet", headers=auth)
        assert after.status_code == 503, after.text

        # The owner starts it again: the version it last ran, from the kept image.
        started_again = api.post(f"/api/v1/apis/{api_id}/start", headers=auth)
        assert started_again.status_code == 202, started_again.text
        assert started_again.json()["version"] == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if api.get(f"/api/v1/apis/{api_id}/status", headers=auth).json()["status"] == "running":
                break
            time.sleep(0.2)
        with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
            assert plane.get(f"/{slug}/back", headers=auth).status_code == 200
        again = api.post(f"/api/v1/apis/{api_id}/start", headers=auth)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "already_running"

    # Ctrl-C stops everything the launcher started.
    assert stop(platform.process) == 0


def _consumer_subscribes(api: httpx.Client, owner: dict[str, str], api_id: str) -> str:
    assert api.patch(
        f"/api/v1/apis/{api_id}", json={"visibility": "public"}, headers=owner
    ).is_success
    plan = api.post(
        f"/api/v1/apis/{api_id}/plans",
        json={"name": "Starter", "rate_per_second": 5, "burst": 5, "daily_quota": 1000},
        headers=owner,
    )
    assert plan.status_code == 201, plan.text
    tokens = api.post(
        "/api/v1/auth/signup",
        json={"email": "buyer@example.com", "password": "correct horse", "role": "consumer"},
    ).json()
    consumer = {"Authorization": f"Bearer {tokens['access_token']}"}
    found = api.get("/api/v1/marketplace/apis", params={"q": "hello"}).json()
    assert [item["id"] for item in found["items"]] == [api_id]
    subscribed = api.post(f"/api/v1/marketplace/apis/{api_id}/subscribe", json={}, headers=consumer)
    assert subscribed.status_code == 201, subscribed.text
    body = subscribed.json()
    key: str = body["api_key"]
    assert key.startswith("veil_live_")
    # The key is shown once: listing shows its prefix only.
    listed = api.get(f"/api/v1/subscriptions/{body['subscription']['id']}/keys", headers=consumer)
    assert key not in listed.text
    revoke = api.delete(f"/api/v1/keys/{body['key']['id']}", headers=consumer)
    assert revoke.status_code == 204, revoke.text
    fresh = api.post(
        f"/api/v1/subscriptions/{body['subscription']['id']}/keys", json={}, headers=consumer
    )
    assert fresh.status_code == 201, fresh.text
    new_key: str = fresh.json()["api_key"]
    return new_key


def _rate_limit_and_revocation_hold_across_workers(
    api: httpx.Client, platform: Platform, slug: str, key: str
) -> None:
    """Fresh connections spread over the data plane's worker processes."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=platform.dataplane, timeout=10, limits=no_reuse) as plane:
        time.sleep(1.1)  # a full bucket again
        statuses = [plane.get(f"/{slug}/burst", headers=headers).status_code for _ in range(8)]
        assert statuses.count(200) <= 6, statuses  # burst 5 (+1 refilled meanwhile at most)
        assert 429 in statuses, statuses
        consumer = _login(api, "buyer@example.com")
        subscription_id = api.get("/api/v1/subscriptions", headers=consumer).json()["items"][0][
            "id"
        ]
        listed = api.get(f"/api/v1/subscriptions/{subscription_id}/keys", headers=consumer).json()
        live = [k for k in listed["items"] if k["revoked_at"] is None]
        assert api.delete(f"/api/v1/keys/{live[0]['id']}", headers=consumer).status_code == 204
        time.sleep(1.0)  # the bound: revoked everywhere within one second
        statuses = [plane.get(f"/{slug}/after", headers=headers).status_code for _ in range(8)]
        assert statuses == [401] * 8, statuses


def _login(api: httpx.Client, email: str) -> dict[str, str]:
    tokens = api.post(
        "/api/v1/auth/login", json={"email": email, "password": "correct horse"}
    ).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}
