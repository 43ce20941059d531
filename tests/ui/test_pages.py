"""Page by page: validation, errors in plain words, phone width, keyboard, CSP, hostile
input. Nothing here deploys: the platform is shared with the journey test."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import FilePayload, Page, expect

from testkit.platform import Platform
from tests.ui.conftest import PASSWORD, PHONE, Browsing, api_signup, go, shot, ui_login

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.docker]

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_TEXT = "<script>alert(2)</script><b>bold?</b>"


def create_api(platform: Platform, token: str, **body: object) -> dict[str, object]:
    answer = httpx.post(
        f"{platform.gateway}/api/v1/apis",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, object] = answer.json()
    return created


def add_plan(platform: Platform, token: str, api_id: object, name: str = "Free") -> None:
    answer = httpx.post(
        f"{platform.gateway}/api/v1/apis/{api_id}/plans",
        json={"name": name, "daily_quota": 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px window"


def test_forms_validate_before_sending(open_browser: Callable[..., Browsing]) -> None:
    browsing = open_browser()
    page = browsing.page
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/auth/" in r.url else None)
    go(page, "/signup")
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.get_by_text("Email is required.")).to_be_visible()
    expect(page.get_by_text("Password is required.")).to_be_visible()
    # Focus goes to the first field with a problem, which says so to assistive tech.
    email = page.get_by_label("Email")
    expect(email).to_be_focused()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(re.compile("Email is required"))

    email.fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up", exact=True).click()
    expect(page.get_by_text("Enter an email address, like name@example.com.")).to_be_visible()
    expect(page.get_by_text("Password must be at least 8 characters.")).to_be_visible()
    shot(page, "page-signup-validation")
    assert sent == [], sent

    # Fixing a field clears its message as the person types.
    email.fill("someone@example.com")
    expect(page.get_by_text("Enter an email address, like name@example.com.")).to_be_hidden()


def test_api_errors_are_shown_in_plain_words(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    taken = api_signup(platform)["email"]
    browsing = open_browser()
    page = browsing.page
    go(page, "/signup")
    page.get_by_label("Email").fill(taken)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("An account with this email already exists.")
    expect(alert).not_to_contain_text("409")
    expect(alert).not_to_contain_text("email_taken")
    shot(page, "page-signup-duplicate-email")

    go(page, "/login")
    page.get_by_label("Email").fill(taken)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")

    # An upload Veil cannot build: the server's reason, in words.
    ui_login(page, taken)
    developer_token = httpx.post(
        f"{platform.gateway}/api/v1/auth/login",
        json={"email": taken, "password": PASSWORD},
        timeout=30,
    ).json()["access_token"]
    created = create_api(platform, developer_token, name="Upload errors")
    go(page, f"/apis/{created['id']}")
    page.set_input_files(
        "#upload-file", files=FilePayload(name="notes.txt", mimeType="text/plain", buffer=b"hi")
    )
    expect(page.locator(".upload-result [role=alert]")).to_be_visible()
    assert "{" not in page.locator(".upload-result").inner_text()
    # Deploying with no code yet: a conflict the person can act on.
    page.get_by_role("button", name="Deploy latest version").click()
    expect(
        page.get_by_role("alert").filter(has_text="upload code before deploying")
    ).to_be_visible()
    shot(page, "page-api-errors")


def test_drag_and_drop_upload(platform: Platform, open_browser: Callable[..., Browsing]) -> None:
    developer = api_signup(platform)
    created = create_api(platform, developer["token"], name="Dropped")
    browsing = open_browser()
    page = browsing.page
    ui_login(page, developer["email"])
    go(page, f"/apis/{created['id']}")
    expect(page.locator("#dropzone")).to_be_visible()
    transfer = page.evaluate_handle(
        """() => {
            const data = new DataTransfer();
            const code = 'def handle(request):\\n    return {"dropped": True}\\n';
            data.items.add(new File([code], 'handler.py', { type: 'text/x-python' }));
            return data;
        }"""
    )
    page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    expect(page.locator("#dropzone")).to_have_class(re.compile("dragging"))
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    expect(page.get_by_text(re.compile(r"Version 1 uploaded: python \(handler\)"))).to_be_visible()
    page.get_by_role("link", name="Versions").click()
    expect(page.get_by_role("cell", name="handler.py", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Deploy v1")).to_be_visible()
    assert browsing.console.unexpected() == []


def test_phone_width_has_no_horizontal_scroll(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    developer = api_signup(platform)
    long_name = "A rather long API name " + "x" * 60
    created = create_api(
        platform,
        developer["token"],
        name=long_name,
        description="y" * 300,
        visibility="public",
    )
    add_plan(platform, developer["token"], created["id"])
    browsing = open_browser(viewport=PHONE)
    page = browsing.page
    go(page, "/signup")
    no_horizontal_scroll(page)
    shot(page, "phone-signup")

    # The menu folds away behind a button on a phone.
    nav_link = page.get_by_role("link", name="Marketplace")
    expect(nav_link).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav_link).to_be_visible()
    shot(page, "phone-menu-open")
    nav_link.click()
    expect(page.get_by_role("heading", name="Marketplace", exact=True)).to_be_visible()
    expect(nav_link).to_be_hidden()  # closed again after navigating

    ui_login(page, developer["email"])
    api_id = created["id"]
    for route, name in [
        ("/apis", "phone-apis"),
        (f"/apis/{api_id}", "phone-api-overview"),
        (f"/apis/{api_id}/versions", "phone-api-versions"),
        (f"/apis/{api_id}/stats", "phone-api-stats"),
        (f"/apis/{api_id}/plans", "phone-api-plans"),
        (f"/apis/{api_id}/settings", "phone-api-settings"),
        ("/marketplace", "phone-marketplace"),
        (f"/marketplace/{api_id}", "phone-marketplace-api"),
        ("/subscriptions", "phone-subscriptions"),
        ("/earnings", "phone-earnings"),
    ]:
        go(page, route)
        expect(page.locator("#main h1")).not_to_have_text("API")
        expect(page.locator(".loading")).to_have_count(0)
        no_horizontal_scroll(page)
        shot(page, name)
    assert browsing.console.unexpected() == []


def focus_path(page: Page, presses: int) -> list[str]:
    """Press Tab `presses` times; what got focus each time, as 'tag:name'."""
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                """() => {
                    const e = document.activeElement;
                    const label = e.labels && e.labels.length ? e.labels[0].textContent : '';
                    const name = e.getAttribute('aria-label') || label || e.textContent || '';
                    return `${e.tagName.toLowerCase()}:${name.trim()}`;
                }"""
            )
        )
    return seen


def test_keyboard_reaches_the_main_actions(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    developer = api_signup(platform)
    browsing = open_browser()
    page = browsing.page
    go(page, "/login")
    expect(page.get_by_label("Email")).to_be_visible()  # the form is drawn before tabbing
    path = focus_path(page, 8)
    assert path[0] == "a:Skip to content", path
    for wanted in ("a:Marketplace", "input:Email", "input:Password", "button:Log in"):
        assert wanted in path, path
    # The focus ring is visible.
    page.get_by_label("Email").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline

    # Logging in with the keyboard alone.
    page.get_by_label("Email").focus()
    page.keyboard.type(developer["email"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My APIs", exact=True)).to_be_visible()
    # After a page change, focus starts at the new page's heading.
    expect(page.locator("#main h1")).to_be_focused()
    path = focus_path(page, 12)
    for wanted in ("a:New API", "input:Name", "button:Create API"):
        assert wanted in path, path
    # The skip link (the first stop after a load) jumps past the navigation.
    page.reload()
    expect(page.get_by_role("heading", name="My APIs", exact=True)).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main h1")).to_be_focused()
    shot(page, "page-keyboard")


def test_security_headers_and_a_clean_console(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    developer = api_signup(platform)
    created = create_api(platform, developer["token"], name="Clean", visibility="public")
    add_plan(platform, developer["token"], created["id"])
    browsing = open_browser()
    page = browsing.page
    response = page.goto("/")
    assert response is not None
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    # Every asset comes from Veil itself: nothing is fetched from anywhere else.
    foreign: list[str] = []
    page.on(
        "request",
        lambda r: foreign.append(r.url) if not r.url.startswith(platform.gateway) else None,
    )
    # Inline script is refused by the policy.
    page.evaluate(
        """() => {
            const s = document.createElement('script');
            s.textContent = 'window.__inline_ran = true';
            document.body.append(s);
        }"""
    )
    assert page.evaluate("window.__inline_ran === undefined")
    csp_refusals = [e for e in browsing.console.errors if "Content Security Policy" in e]
    assert csp_refusals, browsing.console.errors
    browsing.console.errors.clear()

    ui_login(page, developer["email"])
    api_id = created["id"]
    for route in (
        "/apis",
        f"/apis/{api_id}",
        f"/apis/{api_id}/versions",
        f"/apis/{api_id}/stats",
        f"/apis/{api_id}/plans",
        f"/apis/{api_id}/settings",
        "/earnings",
        "/marketplace",
        f"/marketplace/{api_id}",
        "/subscriptions",
        "/invoices",
    ):
        go(page, route)
        expect(page.locator(".loading")).to_have_count(0)
        expect(page.locator("[role=alert]")).to_have_count(0)
    assert browsing.console.errors == []
    assert foreign == []


def test_hostile_names_are_shown_as_text(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    developer = api_signup(platform)
    created = create_api(
        platform,
        developer["token"],
        name=HOSTILE_NAME,
        description=HOSTILE_TEXT,
        visibility="public",
    )
    add_plan(platform, developer["token"], created["id"], name="<i>plan</i>")
    browsing = open_browser()
    page = browsing.page
    ui_login(page, developer["email"])
    go(page, "/apis")
    expect(page.get_by_role("link", name=HOSTILE_NAME)).to_be_visible()
    go(page, f"/apis/{created['id']}")
    expect(page.locator("#main h1")).to_have_text(HOSTILE_NAME)
    go(page, f"/apis/{created['id']}/plans")
    expect(page.get_by_role("cell", name="<i>plan</i>", exact=True)).to_be_visible()
    go(page, f"/marketplace/{created['id']}")
    expect(page.locator("#main h1")).to_have_text(HOSTILE_NAME)
    expect(page.locator(".description")).to_have_text(HOSTILE_TEXT)
    shot(page, "page-hostile-name")
    go(page, "/marketplace")
    expect(page.get_by_role("link", name=HOSTILE_NAME)).to_be_visible()
    # Nothing was parsed as markup: no element the name or description describes exists.
    assert page.locator("#main img, #main script, #main b, #main i").count() == 0
    assert browsing.console.dialogs == []
    assert browsing.console.unexpected() == []


def test_logged_out_visitors_are_sent_to_log_in(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    consumer = api_signup(platform, role="consumer", email=f"c-{secrets.token_hex(3)}@example.com")
    browsing = open_browser()
    page = browsing.page
    go(page, "/subscriptions")
    expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()
    page.get_by_label("Email").fill(consumer["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    # Back where they wanted to go.
    expect(page.get_by_role("heading", name="My subscriptions", exact=True)).to_be_visible()
    # A consumer is not a developer: the developer pages say so instead of failing.
    go(page, "/apis")
    expect(page.get_by_role("alert")).to_have_text("This page needs a developer account.")
    # A reload keeps the session (refresh token in this tab's sessionStorage).
    page.reload()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert browsing.console.unexpected() == []
