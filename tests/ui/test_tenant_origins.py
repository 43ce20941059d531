"""In a real browser: a hostile tenant's page, on its own host name, can neither set
nor read the cookies of the dashboard or of another tenant, nor read another
tenant's answers with the visitor's cookies.

The platform runs as `make run` runs it, so APIs live at
http://<slug>.localhost:<data plane port>/ (Chromium resolves *.localhost to
loopback) and the dashboard at http://localhost:<gateway port>/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Route

from testkit.platform import Platform
from tests.ui.conftest import Browsing, api_signup

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.docker]
TENANTS = Path(__file__).parents[1] / "fixtures" / "tenants"


def deployed(platform: Platform, token: str, name: str, source: bytes) -> str:
    """Create, upload and deploy one API through the control plane; its slug."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=platform.gateway, headers=auth, timeout=30) as api:
        created = api.post("/api/v1/apis", json={"name": name}).json()
        uploaded = api.post(
            f"/api/v1/apis/{created['id']}/upload", files={"file": ("main.py", source)}
        )
        assert uploaded.status_code == 201, uploaded.text
        assert api.post(f"/api/v1/apis/{created['id']}/deploy").status_code == 202
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = api.get(f"/api/v1/apis/{created['id']}/status").json()
            if status["status"] in ("running", "failed"):
                break
            time.sleep(0.3)
        assert status["status"] == "running", status
        assert status["url"] == f"http://{created['slug']}.localhost:{_port(platform.dataplane)}/"
        return str(created["slug"])


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def test_a_hostile_tenant_page_is_confined_to_its_own_origin(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    owner = api_signup(platform)
    plane_port = _port(platform.dataplane)
    victim = deployed(platform, owner["token"], "Victim", (TENANTS / "victim.py").read_bytes())
    victim_url = f"http://{victim}.localhost:{plane_port}"
    page_source = (
        (TENANTS / "hostile_page.py").read_bytes().replace(b"__VICTIM_URL__", victim_url.encode())
    )
    hostile = deployed(platform, owner["token"], "Hostile", page_source)
    hostile_url = f"http://{hostile}.localhost:{plane_port}"
    dashboard_url = f"http://localhost:{_port(platform.gateway)}"

    browsing = open_browser()

    # The visitor's credential for the data plane (the owner's token: both APIs are
    # theirs), added by the network layer as a client would send it.
    def with_credentials(route: Route) -> None:
        headers = {**route.request.headers, "authorization": f"Bearer {owner['token']}"}
        route.continue_(headers=headers)

    browsing.context.route(f"http://*.localhost:{plane_port}/**", with_credentials)
    page = browsing.page
    page.goto(f"{victim_url}/login")  # the victim's session cookie
    page.goto(f"{dashboard_url}/")
    page.goto(f"{hostile_url}/")
    report = page.evaluate("window.report")

    # The hostile page sees only what it may: its own cookies, none of the victim's,
    # and the victim's answer is not readable cross-origin.
    assert "victim_sid" not in report["own_cookies"], report
    assert report["victim"].startswith("blocked"), report

    def names(url: str) -> set[str]:
        return {c["name"] for c in browsing.context.cookies(url)}

    assert names(victim_url) == {"victim_sid"}, browsing.context.cookies()
    assert names(dashboard_url) == set(), browsing.context.cookies()
    # What the hostile tenant could set at all: host-only cookies of its own host
    # (its Domain=localhost header cookies came back host-only), nothing wider.
    hostile_host = f"{hostile}.localhost"
    for cookie in browsing.context.cookies():
        assert cookie["domain"] in (hostile_host, f"{victim}.localhost"), cookie
    assert "tossed_header" in names(hostile_url)  # Domain stripped, not the cookie
    assert "veil_session" not in names(hostile_url)  # a platform name: refused
    # And what the victim's server is sent: its own cookie only.
    page.goto(f"{victim_url}/whoami")
    seen = json.loads(page.locator("body").inner_text())
    assert seen == {"cookie": "victim_sid=v1"}, seen
