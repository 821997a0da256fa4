"""The hosted form in a real browser, at a phone's width (390 px) and a laptop's (1366 px):
labels a screen reader reads, errors by the field with nothing lost, one-to-one consent names,
then the thank-you page."""

from __future__ import annotations

import pytest

from accounts.tenancy import market_scope
from leads.models import ConsentRecord, Lead
from tests.browser.conftest import shot
from tests.exchange.builder import buyer, load

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.parametrize(("width", "name"), [(390, "phone"), (1366, "laptop")])
def test_a_consumer_fills_in_the_hosted_form(browser, live_server, settings, width, name):
    load(
        buyer("acme", "30.00"),
        buyer("bolt", "20.00"),
        one_to_one_consent=True,
        campaign={"consent_text": "By ticking the box I agree to be called and texted about auto insurance."},
    )
    settings.GAVEL_FORM_MIN_SECONDS = 0
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{live_server.url}/f/cmp_seller?sub_id1=fb&click_id=clk_9")
    for label in ("State", "ZIP code", "Age", "Email", "Phone", "First name", "I agree"):
        assert page.get_by_label(label, exact=True).count() == 1, label
    assert page.locator(".named-buyers li").all_inner_texts() == ["Acme", "Bolt"]
    # Nothing overflows the phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, f"hosted-form-{name}")

    page.get_by_label("State", exact=True).select_option("CA")
    page.get_by_label("ZIP code", exact=True).fill("9410")
    page.get_by_label("Age", exact=True).fill("34")
    page.get_by_label("Email", exact=True).fill("jane.doe@example")
    page.get_by_label("Phone", exact=True).fill("(415) 555-2671")
    page.get_by_label("First name", exact=True).fill("Jane")
    page.get_by_role("button", name="Send my request").click()
    page.wait_for_selector("#err_consent")
    assert page.get_by_label("ZIP code", exact=True).input_value() == "9410"  # nothing lost
    assert page.get_by_label("ZIP code", exact=True).get_attribute("aria-invalid") == "true"
    assert "Must be a 5-digit ZIP code" in page.inner_text("#err_zip")
    shot(page, f"hosted-form-errors-{name}")

    page.get_by_label("ZIP code", exact=True).fill("94107")
    page.get_by_label("Email", exact=True).fill("jane.doe@example.com")
    page.get_by_label("I agree", exact=True).check()
    settings.GAVEL_FORM_MIN_SECONDS = 30  # now a submission "too fast" for a person
    page.get_by_role("button", name="Send my request").click()
    page.wait_for_selector("text=quicker than a person")
    assert page.get_by_label("Email", exact=True).input_value() == "jane.doe@example.com"
    assert page.get_by_label("I agree", exact=True).is_checked()

    settings.GAVEL_FORM_MIN_SECONDS = 0
    page.get_by_role("button", name="Send my request").click()
    page.wait_for_selector("h1:has-text('Thank you')")
    shot(page, f"hosted-form-thanks-{name}")
    with market_scope():
        lead = Lead.objects.get()
        record = ConsentRecord.objects.get(lead=lead)
    assert lead.status == "sold" and lead.tracking == {"sub_id1": "fb", "click_id": "clk_9"}
    assert record.raw["named_buyers"] == ["acme", "bolt"]
    assert record.page_url.endswith("/f/cmp_seller?sub_id1=fb&click_id=clk_9")
    assert "HeadlessChrome" in record.user_agent
