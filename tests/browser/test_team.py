"""Team and API keys in a real browser: an owner makes a key, sees it once and revokes it; an
owner invites a teammate, who accepts through the emailed link."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import Membership
from tests.browser.conftest import HEIGHT, WIDTH, log_in, person, shot
from tests.conftest import api_client
from tests.exchange.builder import buyer, load

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_an_owner_creates_a_key_sees_it_once_and_revokes_it(browser, live_server):
    load(buyer("acme", "30.00"))
    person("acme", "owner@acme.test")
    page = log_in(browser, live_server, "owner@acme.test")

    page.click("nav >> text=API keys")
    shot(page, "keys-empty")
    page.fill("#id_name", "CRM sync")
    page.check("input[name=scopes][value=contracts]")
    page.click("button:has-text('Create key')")
    raw = page.text_content("#new-key-value").strip()
    assert raw.startswith("gvl_")
    shot(page, "keys-created")
    assert api_client(raw).get("/api/v1/contracts").status_code == 200

    page.click("nav >> text=API keys")  # a fresh visit: the key is gone from the page
    assert raw not in page.content() and f"{raw[:12]}…" in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Revoke')")
    page.wait_for_selector("text=is revoked")
    assert page.locator("tr.revoked").count() == 1
    shot(page, "keys-revoked")
    assert api_client(raw).get("/api/v1/contracts").status_code == 401


def test_an_owner_invites_a_teammate_who_accepts_by_the_emailed_link(browser, live_server):
    load(buyer("acme", "30.00"))
    person("acme", "owner@acme.test")
    page = log_in(browser, live_server, "owner@acme.test")

    page.click("nav >> text=Team")
    page.fill("#id_email", "Sam@Example.com")
    page.select_option("#id_role", "manager")
    page.click("button:has-text('Send invitation')")
    page.wait_for_selector("#invitation-sent")
    shot(page, "team-invited")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/invite/\S+/", mail.outbox[0].body).group(0)

    guest = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
    guest.goto(link)
    assert "Join" in guest.text_content("h1")
    shot(guest, "invite-accept")
    guest.fill("#id_name", "Sam Rivera")
    guest.fill("#id_password1", "short")
    guest.fill("#id_password2", "short")
    guest.click("button:has-text('Create my account')")
    assert "too short" in guest.content()
    shot(guest, "invite-accept-error")
    assert guest.input_value("#id_name") == "Sam Rivera"  # kept
    guest.fill("#id_password1", "a-long-unusual-passphrase-42")
    guest.fill("#id_password2", "a-long-unusual-passphrase-42")
    guest.click("button:has-text('Create my account')")
    guest.wait_for_url(f"{live_server.url}/portal/")
    assert "you are a member as manager" in guest.content()

    assert Membership.objects.get(user__email="sam@example.com").role == "manager"
    guest.click("nav >> text=Team")
    assert "Read-only" in guest.content()
    shot(guest, "team-read-only")

    page.click("nav >> text=Team")
    assert "sam@example.com" in page.content() and "No pending invitations" in page.content()
    shot(page, "team-owner")
    guest.goto(link)  # the link worked once
    assert "already used" in guest.text_content("h1")
