"""Hosted forms at /f/<campaign id>: built from the offer's schema, errors by the field with
nothing lost, honeypot and time-to-submit checks, sold through the full-lead path with the consent
record's IP, user agent and page URL, sub ids from the query string, thank-you or buyer redirect."""

from __future__ import annotations

import re
import time
from html import unescape

import pytest
from django.test import Client, override_settings

from accounts.tenancy import market_scope
from exchange import hosted_form
from leads.models import ConsentRecord, Lead
from tests.exchange.builder import buyer, load
from tests.sessions import member

pytestmark = pytest.mark.django_db

URL = "/f/cmp_seller"
GOOD = {
    "state": "CA",
    "zip": "94107",
    "age": "34",
    "email": "jane.doe@example.com",
    "phone": "(415) 555-2671",
    "first_name": "Jane",
    "consent_agreed": "yes",
}


def stamp_from(html: str) -> str:
    match = re.search(r'name="form_stamp" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def submit(client: Client, data: dict[str, str], *, query: str = "", age_s: float = 10.0) -> object:
    """GET the page (as a person would), then POST it as if ``age_s`` seconds later."""
    page = client.get(URL + query)
    assert page.status_code == 200
    html = page.content.decode()
    hidden = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html)}
    with override_settings(GAVEL_FORM_MIN_SECONDS=0 if age_s >= 3 else 3):
        return client.post(URL + query, {**hidden, **data}, HTTP_USER_AGENT="Mozilla/5.0 (Phone)")


def leads() -> list[Lead]:
    with market_scope():
        return list(Lead.objects.all())


def test_the_page_is_built_from_the_offers_schema_and_labelled():
    load(buyer("a", "10.00"), campaign={"consent_text": "I agree that Acme may call me."})
    html = Client().get(URL).content.decode()
    for name in ("state", "zip", "age", "email", "phone", "first_name"):
        assert f'<label for="id_{name}">' in html and f'id="id_{name}"' in html
    assert 'type="email"' in html and 'type="tel"' in html and 'inputmode="numeric"' in html
    assert '<option value="CA">CA</option>' in html  # state: a select of state codes
    assert 'min="18"' in html and 'max="120"' in html  # age bounds from the schema
    assert "I agree that Acme may call me." in html and 'name="consent_agreed"' in html
    assert 'name="website"' in html and 'tabindex="-1"' in html  # the honeypot
    assert "cdn" not in html.lower() and "//" not in re.sub(r"https?://testserver", "", html).replace("://", "")


def test_an_unknown_campaign_is_a_404():
    load(buyer("a", "10.00"))
    assert Client().get("/f/cmp_nope").status_code == 404


def test_a_paused_campaign_says_the_form_is_closed():
    load(buyer("a", "10.00"), campaign={"status": "paused"})
    response = Client().get(URL)
    assert response.status_code == 404 and "This form is closed" in response.content.decode()


def test_each_error_is_shown_by_its_field_and_every_value_comes_back():
    load(buyer("a", "10.00"))
    response = submit(
        Client(), {**GOOD, "zip": "9410", "email": "not-an-email", "first_name": "", "consent_agreed": ""}
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert 'id="err_consent"' in html and "Tick the box" in html
    assert re.search(r'id="err_first_name">This field is required', html)
    assert leads() == []
    # The consent box ticked: the schema's errors, each by its field, values kept.
    response = submit(Client(), {**GOOD, "zip": "9410", "email": "not-an-email"})
    html = response.content.decode()
    assert response.status_code == 422
    assert re.search(r'id="err_zip">Must be a 5-digit ZIP code', html)
    assert re.search(r'id="err_email">Must be a valid email address', html)
    assert 'value="9410"' in html and 'value="not-an-email"' in html and 'value="34"' in html
    assert '<option value="CA" selected>' in html and 'name="consent_agreed" value="yes" checked' in html
    assert "Please correct the 2 fields" in html
    assert leads() == []


def test_a_required_field_left_empty_is_named():
    load(buyer("a", "10.00"))
    response = submit(Client(), {**GOOD, "state": ""})
    assert response.status_code == 422
    assert re.search(r'id="err_state">This field is required', response.content.decode())


def test_a_filled_honeypot_sells_nothing():
    load(buyer("a", "10.00"))
    response = submit(Client(), {**GOOD, "website": "http://spam.example"})
    assert response.status_code == 400 and "could not be sent" in response.content.decode()
    assert leads() == []


def test_a_submission_faster_than_a_person_is_refused_and_keeps_the_values():
    load(buyer("a", "10.00"))
    response = submit(Client(), GOOD, age_s=0.1)
    html = response.content.decode()
    assert response.status_code == 400 and "quicker than a person" in html
    assert 'value="jane.doe@example.com"' in html
    assert leads() == []


def test_a_forged_stamp_is_refused():
    load(buyer("a", "10.00"))
    client = Client()
    client.get(URL)
    response = client.post(URL, {**GOOD, "form_stamp": f"{time.time() - 60}:forged"})
    assert response.status_code == 400 and "expired" in response.content.decode()
    assert leads() == []


def test_a_good_submission_sells_through_the_lead_path_with_its_consent_record():
    load(buyer("a", "10.00"), campaign={"consent_text": "I agree to be called."})
    response = submit(Client(), GOOD, query="?sub_id1=fb&sub_id2=ad7&click_id=clk_42&utm_x=dropped")
    assert response.status_code == 200 and "Thank you" in response.content.decode()
    (lead,) = leads()
    assert (lead.status, lead.organization.slug, lead.campaign.public_id) == ("sold", "seller", "cmp_seller")
    assert lead.tracking == {"sub_id1": "fb", "sub_id2": "ad7", "click_id": "clk_42"}
    assert lead.quality_signals["phone"] == 8 and lead.quality_signals["name"] == 5
    with market_scope():
        record = ConsentRecord.objects.get(lead=lead)
    assert record.ip == "127.0.0.1"
    assert record.user_agent == "Mozilla/5.0 (Phone)"
    assert record.page_url == "http://testserver/f/cmp_seller?sub_id1=fb&sub_id2=ad7&click_id=clk_42&utm_x=dropped"
    assert record.text == "I agree to be called."
    assert lead.ping.source == "lead"


def test_the_campaigns_thank_you_page_when_no_buyer_redirects():
    load(buyer("a", "10.00"), campaign={"thank_you_url": "https://seller.example/thanks"})
    response = submit(Client(), GOOD)
    assert (response.status_code, response["Location"]) == (302, "https://seller.example/thanks")


def test_the_winning_buyers_redirect(receiver):
    receiver.script.append((200, b'{"status": "accepted", "redirect_url": "https://buyer.example/welcome"}', {}))
    delivery = {
        "method": "webhook",
        "url": receiver.url,
        "timeout_ms": 2000,
        "accept": {"path": "status", "equals": "accepted"},
    }
    load(buyer("a", "10.00", delivery=delivery), campaign={"thank_you_url": "https://seller.example/thanks"})
    response = submit(Client(), GOOD)
    assert (response.status_code, response["Location"]) == (302, "https://buyer.example/welcome")
    assert hosted_form.buyer_redirect(leads()[0].public_id) == "https://buyer.example/welcome"


def test_an_unsold_lead_still_gets_the_thank_you_page():
    load(buyer("a", "10.00", min_score=100))
    response = submit(Client(), GOOD)
    assert response.status_code == 200 and "Thank you" in response.content.decode()
    assert leads()[0].status == "pending"  # no buyer yet: the offer's re-auction cycles try again


def test_the_sellers_campaign_page_links_its_form():
    load(buyer("a", "10.00"))
    page = member("seller-owner@example.com", "seller", "owner").get("/portal/campaigns/cmp_seller/")
    assert page.status_code == 200, page.status_code
    assert 'href="/f/cmp_seller"' in page.content.decode()
