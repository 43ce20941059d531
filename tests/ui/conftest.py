"""The web UI in a real browser: Debian's Chromium, headless, driven by Playwright.

One platform (started through the launcher, as `make run` does) and one browser
serve every test of this package; each test makes its own users and browser
contexts. Screenshots go to tests/artifacts/ (git-ignored).

Package scope, and Playwright started here rather than by pytest-playwright's
session fixtures: the sync API runs its event loop in the test thread while it
lives, which would break every asyncio test that pytest runs after this package.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from testkit.platform import Platform, running_platform

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "correct horse"
ADMIN_PASSWORD = "admin password 123"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 760}

expect.set_options(timeout=15_000)


@pytest.fixture(scope="package")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    label = f"ui-{secrets.token_hex(4)}"
    workdir = tmp_path_factory.mktemp("ui-platform")
    with running_platform(workdir, label, {"VEIL_BCRYPT_ROUNDS": "4"}) as started:
        yield started


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; never a browser downloaded by Playwright."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/setup.sh --with-browser`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Console:
    """What the pages of one browser context said: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def unexpected(self, allowed: tuple[str, ...] = ()) -> list[str]:
        return [e for e in self.errors if not any(re.search(a, e) for a in allowed)]


@dataclass
class Browsing:
    context: BrowserContext
    page: Page
    console: Console


@pytest.fixture
def open_browser(chromium: Browser, platform: Platform) -> Iterator[Callable[..., Browsing]]:
    """Open a fresh browser context (one person) on the gateway; closed after the test."""
    contexts: list[BrowserContext] = []

    def open_context(viewport: dict[str, int] | None = None) -> Browsing:
        context = chromium.new_context(
            base_url=platform.gateway,
            viewport=viewport or LAPTOP,  # type: ignore[arg-type]
            permissions=["clipboard-read", "clipboard-write"],
        )
        contexts.append(context)
        console = Console()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                console.errors.append(f"{message.text} @ {message.location.get('url', '')}")

        def watch(page: Page) -> None:
            page.on("console", on_console)
            page.on("pageerror", lambda error: console.errors.append(f"pageerror: {error}"))

            def on_dialog(dialog: Any) -> None:
                console.dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)

        context.on("page", watch)
        page = context.new_page()
        return Browsing(context, page, console)

    yield open_context
    for context in contexts:
        context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def go(page: Page, route: str) -> None:
    """Open a route of the single-page app (`/apis`, `/marketplace?q=x`)."""
    page.goto(f"/#{route}")


def api_signup(
    platform: Platform, role: str = "developer", email: str | None = None
) -> dict[str, str]:
    """A user made through the API (faster than the form); returns email and token."""
    email = email or f"{role}-{secrets.token_hex(4)}@example.com"
    answer = httpx.post(
        f"{platform.gateway}/api/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "role": role},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return {"email": email, "token": answer.json()["access_token"]}


def ui_login(page: Page, email: str, password: str = PASSWORD) -> None:
    go(page, "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#logout")).to_be_attached()  # in the folded menu on a phone


def make_admin(platform: Platform, email: str) -> None:
    """Admins come from the CLI (`make admin`), never from sign-up."""
    env = {
        **os.environ,
        "VEIL_DATA_DIR": str(platform.data_dir),
        "VEIL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "VEIL_BCRYPT_ROUNDS": "4",
    }
    made = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "gateway.admin.create_admin", email],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
