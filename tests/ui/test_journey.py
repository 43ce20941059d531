"""The whole story in the browser: a developer publishes, a consumer subscribes and
calls, the developer sees the calls, an admin stops the container."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from testkit.platform import Platform
from tests.integration.conftest import SAMPLE_APP, zip_bytes
from tests.ui.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    Browsing,
    go,
    make_admin,
    shot,
    ui_login,
)

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.docker]


def sign_up(page: Page, email: str, role: str) -> None:
    go(page, "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    label = "publish APIs (developer)" if role == "developer" else "use APIs from the marketplace"
    page.get_by_label(label).check()
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.mark.timeout(600)
def test_publish_subscribe_call_watch_and_stop(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    tag = secrets.token_hex(3)
    dev = open_browser()
    page = dev.page

    # ---- a developer signs up, creates an API, uploads the sample app, deploys ----
    go(page, "/signup")
    shot(page, "01-signup")
    sign_up(page, f"dev-{tag}@example.com", "developer")
    expect(page.get_by_role("heading", name="My APIs", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill(f"Hello {tag}")
    page.get_by_label("Description").fill("Says hello. Built in the UI journey test.")
    shot(page, "02-apis-empty")
    page.get_by_role("button", name="Create API").click()
    expect(page.get_by_role("heading", name=f"Hello {tag}", level=1)).to_be_visible()
    expect(page.locator(".status-slot .badge")).to_have_text("not deployed")
    api_id = page.url.split("#/apis/")[1].split("?")[0]

    page.set_input_files(
        "#upload-file",
        files=FilePayload(
            name="hello.zip",
            mimeType="application/zip",
            buffer=zip_bytes({"main.py": SAMPLE_APP}),
        ),
    )
    expect(page.get_by_text(re.compile(r"Version 1 uploaded: python"))).to_be_visible()

    page.get_by_role("button", name="Deploy latest version").click()
    log = page.locator("#build-log")
    # The build log streams in while the image builds: lines before the end.
    expect(log).not_to_be_empty(timeout=60_000)
    expect(page.locator("#build-summary")).to_have_text("Deployed.", timeout=180_000)
    expect(page.locator(".steps li.done")).to_have_count(4)
    expect(page.locator(".status-slot .badge")).to_have_text("running", timeout=30_000)
    expect(page.locator(".status-line .badge")).to_have_text("running")
    shot(page, "03-api-overview-deployed")

    # Public, with a plan: what the marketplace needs.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Visibility").select_option("public")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.", exact=True)).to_be_visible()
    expect(page.locator("#api-visibility")).to_have_text("public")
    shot(page, "04-api-settings")
    page.get_by_role("link", name="Plans").click()
    page.get_by_label("Plan name").fill("Starter")
    page.get_by_label("Calls per second").fill("5")
    page.get_by_label("Burst").fill("5")
    page.get_by_label("Daily quota").fill("1000")
    page.get_by_role("button", name="Add plan").click()
    expect(page.get_by_role("cell", name="Starter", exact=True)).to_be_visible()
    shot(page, "05-api-plans")

    # The developer watches the stats page (it refreshes itself) while the calls come in.
    page.get_by_role("link", name="Stats").click()
    calls_tile = page.locator("[data-tile='calls'] .value")
    expect(calls_tile).to_have_text("0")

    # ---- a consumer finds it, subscribes and gets a key, shown once ----
    consumer = open_browser()
    buyer = consumer.page
    sign_up(buyer, f"buyer-{tag}@example.com", "consumer")
    expect(buyer.get_by_role("heading", name="Marketplace", exact=True)).to_be_visible()
    buyer.get_by_label("Search APIs").fill(f"hello {tag}")
    buyer.get_by_label("Search APIs").press("Enter")
    buyer.get_by_role("link", name=f"Hello {tag}").click()
    expect(buyer.get_by_text("curl -H 'X-API-Key: <your key>'")).to_be_visible()
    shot(buyer, "06-marketplace-api")
    buyer.get_by_role("button", name="Subscribe to the Starter plan").click()
    expect(buyer.get_by_role("heading", name="Your API key", exact=True)).to_be_visible()
    key = buyer.get_by_role("textbox", name="API key").input_value()
    assert key.startswith("veil_live_"), key
    buyer.get_by_role("button", name="Copy api key").click()
    expect(buyer.get_by_role("button", name="Copied")).to_be_visible()
    assert buyer.evaluate("navigator.clipboard.readText()") == key
    shot(buyer, "07-subscribed-key-once")

    # ---- calls through the data plane with that key ----
    url = buyer.locator("#key-slot pre code").inner_text()
    # The API's own host name, as `make run` serves it: http://<slug>.localhost:<port>/
    slug = re.search(r"https?://([^./]+)\.localhost:\d+/", url).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
        for i in range(3):
            answer = plane.get(f"/{slug}/from-the-ui/{i}", headers={"X-API-Key": key})
            assert answer.status_code == 200, answer.text

    # ---- the developer sees them appear, without reloading ----
    expect(calls_tile).to_have_text("3", timeout=30_000)
    assert page.locator("#chart-calls rect.bar").count() >= 1
    expect(page.locator("#top-consumers li").first).to_contain_text(f"buyer-{tag}")
    expect(page.locator("[data-tile='p50'] .value")).not_to_have_text("—")
    expect(page.get_by_role("cell", name=re.compile(r"^GET .+from-the-ui.\d$"))).to_have_count(3)
    shot(page, "08-api-stats")

    page.get_by_role("link", name="Runtime logs").click()
    expect(page.locator("#runtime-log")).to_contain_text("from-the-ui", timeout=20_000)
    shot(page, "09-api-logs")
    page.get_by_role("link", name="Versions").click()
    expect(page.get_by_text("live", exact=True)).to_be_visible()
    shot(page, "10-api-versions")
    go(page, "/earnings")
    expect(page.get_by_role("heading", name="Earnings", exact=True)).to_be_visible()
    shot(page, "11-earnings")

    # The consumer's side: usage against the quota, keys, invoices.
    buyer.get_by_role("link", name="Go to this subscription").click()
    expect(buyer.get_by_text(re.compile(r"3 of 1,000 used"))).to_be_visible(timeout=20_000)
    shot(buyer, "12-subscription")
    buyer.get_by_role("button", name=re.compile(r"^Rotate key ")).first.click()
    expect(buyer.get_by_role("heading", name=re.compile("Your new key"))).to_be_visible()
    rotated = buyer.get_by_role("textbox", name="API key").input_value()
    assert rotated.startswith("veil_live_")
    assert rotated != key
    go(buyer, "/subscriptions")
    expect(buyer.get_by_role("link", name=f"Hello {tag}")).to_be_visible()
    shot(buyer, "13-subscriptions")
    go(buyer, "/invoices")
    expect(buyer.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    shot(buyer, "14-invoices")

    # ---- an admin sees the container live and stops it ----
    make_admin(platform, f"root-{tag}@example.com")
    admin = open_browser()
    boss = admin.page
    ui_login(boss, f"root-{tag}@example.com", ADMIN_PASSWORD)
    go(boss, "/admin")
    row = boss.get_by_role("row").filter(has_text=slug)
    expect(row).to_contain_text("running")
    expect(row).to_contain_text(re.compile(r"Memory [\d.]+ \w+ of 256\.0 MB"))
    expect(row).to_contain_text("CPU")
    shot(boss, "15-admin-deployments")
    row.get_by_role("button", name=f"Stop {slug}").click()
    expect(boss.get_by_text(f"Stopping {slug}.")).to_be_visible()

    # ---- and the developer sees it stopped ----
    go(page, f"/apis/{api_id}")
    expect(page.locator(".status-slot .badge")).to_have_text("stopped", timeout=60_000)
    expect(page.get_by_role("button", name="Start")).to_be_visible()
    shot(page, "16-api-overview-stopped")
    with httpx.Client(base_url=platform.dataplane, timeout=10) as plane:
        assert plane.get(f"/{slug}/after-stop", headers={"X-API-Key": rotated}).status_code == 503

    go(boss, "/admin/audit")
    expect(boss.get_by_role("cell", name="api.stop", exact=True)).to_be_visible()
    shot(boss, "17-admin-audit")
    go(boss, "/admin/users")
    expect(boss.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    shot(boss, "18-admin-users")

    # ---- log out ----
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    go(page, f"/apis/{api_id}")
    expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
    shot(page, "19-login")

    for who in (dev, consumer):
        # An API error answer (none expected here) would show as a console error too.
        assert who.console.unexpected() == [], who.console.errors
        assert who.console.dialogs == []
    assert admin.console.unexpected() == [], admin.console.errors
    assert admin.console.dialogs == []
