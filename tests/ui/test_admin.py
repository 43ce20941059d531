"""Admin pages: suspending an API and a user, and what their owner sees."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import expect

from testkit.platform import Platform
from tests.ui.conftest import (
    ADMIN_PASSWORD,
    PASSWORD,
    Browsing,
    api_signup,
    go,
    make_admin,
    shot,
    ui_login,
)

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.docker]


def test_admin_suspends_an_api_and_a_user(
    platform: Platform, open_browser: Callable[..., Browsing]
) -> None:
    developer = api_signup(platform)
    created = httpx.post(
        f"{platform.gateway}/api/v1/apis",
        json={"name": f"Moderated {secrets.token_hex(3)}"},
        headers={"Authorization": f"Bearer {developer['token']}"},
        timeout=30,
    ).json()
    admin_email = f"admin-{secrets.token_hex(3)}@example.com"
    make_admin(platform, admin_email)

    admin = open_browser()
    boss = admin.page
    ui_login(boss, admin_email, ADMIN_PASSWORD)
    go(boss, "/admin/apis")
    boss.get_by_label("Search name, slug or owner").fill(created["slug"])
    boss.get_by_role("button", name="Search", exact=True).click()
    row = boss.get_by_role("row").filter(has_text=created["slug"])
    expect(row).to_have_count(1)
    row.get_by_role("button", name=f"Suspend {created['slug']}").click()
    boss.get_by_label("Reason (shown to the owner)").fill("Too many complaints")
    boss.get_by_role("button", name="Suspend API", exact=True).click()
    expect(row).to_contain_text("suspended")
    expect(row).to_contain_text("Too many complaints")
    shot(boss, "page-admin-apis")

    # The owner sees why, and the deploy button says it in words.
    dev = open_browser()
    page = dev.page
    ui_login(page, developer["email"])
    go(page, f"/apis/{created['id']}")
    expect(
        page.get_by_text("An administrator suspended this API: Too many complaints")
    ).to_be_visible()
    expect(page.locator(".status-slot .badge")).to_have_text("suspended")
    page.get_by_role("button", name="Deploy latest version").click()
    expect(page.get_by_role("alert").filter(has_text="suspended by the platform")).to_be_visible()
    shot(page, "page-api-suspended")

    boss.get_by_role("button", name=f"Unsuspend {created['slug']}").click()
    expect(row).not_to_contain_text("Too many complaints")

    # A suspended user can no longer sign in, and is told so.
    go(boss, "/admin/users")
    boss.get_by_label("Search by email").fill(developer["email"])
    boss.get_by_role("button", name="Search", exact=True).click()
    user_row = boss.get_by_role("row").filter(has_text=developer["email"])
    user_row.get_by_role("button", name=f"Suspend {developer['email']}").click()
    expect(user_row).to_contain_text("suspended")
    shot(boss, "page-admin-users")
    go(boss, "/admin/audit")
    expect(boss.get_by_role("cell", name="user.suspend", exact=True)).to_be_visible()

    again = open_browser()
    go(again.page, "/login")
    again.page.get_by_label("Email").fill(developer["email"])
    again.page.get_by_label("Password").fill(PASSWORD)
    again.page.get_by_role("button", name="Log in", exact=True).click()
    expect(again.page.get_by_role("alert")).to_have_text(
        "This account is suspended by the platform's admins."
    )
    # The page that was open loses access on its next request, in words too.
    page.reload()
    expect(page.get_by_role("heading", name="Log in", exact=True)).to_be_visible()

    go(boss, "/admin/users")
    boss.get_by_label("Search by email").fill(developer["email"])
    boss.get_by_role("button", name="Search", exact=True).click()
    boss.get_by_role("button", name=f"Unsuspend {developer['email']}").click()
    expect(user_row).to_contain_text("active")
    assert admin.console.unexpected() == [], admin.console.errors
