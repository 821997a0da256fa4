"""The public privacy request page in a real browser: a consumer asks for deletion and confirms by the
link emailed to them."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from leads.models import PrivacyRequest
from tests.browser.conftest import HEIGHT, WIDTH, shot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_consumer_asks_for_deletion_and_confirms_by_email(browser, live_server, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
    page.goto(f"{live_server.url}/privacy/")
    shot(page, "privacy-request")
    page.fill("#id_email", "not an email")
    page.click("button[type=submit]")
    assert "valid email" in page.content()
    shot(page, "privacy-request-error")
    page.check("input[value=delete]")
    page.fill("#id_email", "Jane.Doe@Example.com")
    page.fill("#id_phone", "(201) 555-0142")
    page.click("button[type=submit]")
    assert "Check your email" in page.text_content("h1")
    shot(page, "privacy-sent")

    (message,) = mail.outbox
    (link,) = re.findall(r"https?://\S+/privacy/confirm/\S+", message.body)
    page.goto(link)
    shot(page, "privacy-confirm")
    assert PrivacyRequest.objects.get().status == "received"
    page.click("text=Confirm my request")
    assert "Request confirmed" in page.text_content("h1")
    shot(page, "privacy-confirmed")
    assert PrivacyRequest.objects.get().status == "confirmed"
    page.goto(link)
    page.click("text=Confirm my request")
    assert "cannot be used" in page.text_content("h1")
