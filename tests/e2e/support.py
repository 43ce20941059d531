"""What the end-to-end fault tests do through the control plane."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.integration.conftest import SAMPLE_APP, zip_bytes

NODE_SERVER = b"require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT)\n"


def developer(api: httpx.Client, email: str) -> dict[str, str]:
    tokens = api.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": "correct horse", "role": "developer"},
    ).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def deploy_python_app(api: httpx.Client, auth: dict[str, str], name: str) -> dict[str, Any]:
    """A new API running tests' SAMPLE_APP (one main.py, no build step): uploaded and
    deployed, not waited for; the created API."""
    created: dict[str, Any] = api.post("/api/v1/apis", json={"name": name}, headers=auth).json()
    api.post(
        f"/api/v1/apis/{created['id']}/upload",
        headers=auth,
        files={"file": ("main.py", SAMPLE_APP)},
    ).raise_for_status()
    api.post(f"/api/v1/apis/{created['id']}/deploy", headers=auth).raise_for_status()
    return created


def deploy_node_app(
    api: httpx.Client,
    auth: dict[str, str],
    name: str,
    package: dict[str, Any],
    idempotency_key: str | None = None,
) -> tuple[str, str]:
    """A new API with `package` (its install script runs in the build) and a server:
    uploaded and deployed; (API id, deployment id)."""
    created = api.post("/api/v1/apis", json={"name": name}, headers=auth).json()
    files = {"package.json": json.dumps(package).encode(), "index.js": NODE_SERVER}
    uploaded = api.post(
        f"/api/v1/apis/{created['id']}/upload",
        headers=auth,
        files={"file": ("app.zip", zip_bytes(files))},
    )
    assert uploaded.status_code == 201, uploaded.text
    key = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    started = api.post(f"/api/v1/apis/{created['id']}/deploy", headers={**auth, **key})
    assert started.status_code == 202, started.text
    return str(created["id"]), str(started.json()["deployment_id"])
