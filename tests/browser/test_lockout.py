"""A locked account in a real browser: five wrong passwords, then the page that says until when."""

from __future__ import annotations

import pytest

from tests.browser.conftest import HEIGHT, WIDTH, person, shot
from tests.exchange.builder import buyer, load
from tests.sessions import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_five_wrong_passwords_lock_the_account_and_the_page_says_until_when(browser, live_server):
    load(buyer("acme", "30.00"))
    person("acme", "owner@acme.test")
    page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
    page.goto(f"{live_server.url}/login/")
    for _ in range(5):
        page.fill("#id_username", "owner@acme.test")
        page.fill("#id_password", "not-my-password")
        page.click("button[type=submit]")
        page.wait_for_load_state()
    assert page.text_content("h1") == "Sign-in locked for a while"
    shot(page, "login-locked")

    page.click("text=Back to the sign-in page")
    page.fill("#id_username", "owner@acme.test")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.text_content("h1") == "Sign-in locked for a while"  # the right password too, for now
    assert page.url == f"{live_server.url}/login/"
