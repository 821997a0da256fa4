"""The portals in a real browser: Debian's Chromium driven by Playwright (no browser download).

Every browser test gets ``browser``; ``person`` makes a user a member, ``log_in`` opens a logged-in
page 1366 px wide, and ``shot`` keeps a screenshot in ``artifacts/`` to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from tests.sessions import PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WIDTH, HEIGHT = 1366, 900


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright drives the browser from an event loop in this thread; the ORM calls the tests
    # make between page actions are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def person(slug: str, email: str, role: str = "owner") -> None:
    user = user_upsert(email=email, password=PASSWORD)
    membership_set(user=user, organization=Organization.objects.get(slug=slug), role=role)


def log_in(browser, live_server, email: str):
    page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/portal/")
    return page


def shot(page, name: str) -> None:
    """Keep a full-page screenshot of ``page`` as ``artifacts/<name>.png``."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
