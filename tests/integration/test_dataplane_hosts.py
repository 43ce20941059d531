"""Each API on its own host name, and tenant cookies confined to their API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.dataplane.app import DataPlane
from shared.settings import DataPlaneSettings, GatewaySettings
from tests.integration.conftest import assert_error
from tests.integration.test_dataplane import upstream, world

__all__ = ["upstream", "world"]  # the fixtures, shared with test_dataplane


@pytest.fixture
async def hosts(world: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A data plane with an API domain and no path form, as beyond loopback."""
    settings: DataPlaneSettings = world["settings"].model_copy(
        update={"api_domain": "localhost", "path_routing": False}
    )
    plane = DataPlane(settings)
    await plane.startup()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=plane), base_url="http://echo.localhost:8000"
    ) as client:
        yield client
    await plane.shutdown()


async def test_an_api_answers_on_its_own_host_name(
    hosts: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    answer = await hosts.get("/a/b?x=1", headers=world["owner"])
    assert answer.status_code == 200, answer.text
    assert (answer.json()["path"], answer.json()["query"]) == ("/a/b", "x=1")
    upper = await hosts.get("/", headers={**world["owner"], "Host": "ECHO.localhost."})
    assert upper.status_code == 200
    for host in ("nope.localhost", "a.echo.localhost", "localhost:8000", "echo.localhost.evil"):
        refused = await hosts.get("/echo/x", headers={**world["owner"], "Host": host})
        assert_error(refused, 404, "api_not_found")  # and no path form to fall back on
    climbing = await hosts.get("/x/..%2f..%2fy", headers=world["owner"])
    assert_error(climbing, 400, "invalid_path")


async def test_tenant_cookies_stay_host_only_on_their_own_host(
    hosts: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    answer = await hosts.get("/cookies", headers=world["owner"])
    assert answer.headers.get_list("set-cookie") == [
        "theme=dark; Path=/; HttpOnly",
        "prefs=1; Path=/settings",
        "__Host-own=1; Path=/; Secure",
    ]


async def test_on_the_path_form_cookies_are_pinned_under_the_api(world: dict[str, Any]) -> None:
    client: httpx.AsyncClient = world["client"]
    answer = await client.get("/echo/cookies", headers=world["owner"])
    assert answer.headers.get_list("set-cookie") == [
        "theme=dark; HttpOnly; Path=/echo/",
        "prefs=1; Path=/echo/settings",
    ]
    sent = await client.get(
        "/echo/x",
        headers={
            **world["owner"],
            "Cookie": "theme=dark; __Host-veil_session=s; VEIL_other=1; __Secure-veil_x=2",
        },
    )
    assert sent.json()["headers"]["cookie"] == "theme=dark"


def test_public_urls_use_the_api_s_host_name_when_a_domain_is_set(make_settings: Any) -> None:
    path_form: GatewaySettings = make_settings(GatewaySettings)
    assert path_form.public_api_url == "http://localhost:8000/{slug}/"
    own_host: GatewaySettings = make_settings(
        GatewaySettings, api_domain="apis.example.com", public_gateway_url="https://gw.example.com"
    )
    assert own_host.public_api_url == "https://{slug}.apis.example.com/"
    local: GatewaySettings = make_settings(GatewaySettings, api_domain="localhost")
    assert local.public_api_url == "http://{slug}.localhost:8000/"
