"""The seller's campaign page: posting instructions generated from the offer's schema (and accepted
by the real API), the floor and blocked buyers through the terms' one write path, and who may see
and change what."""

from __future__ import annotations

import html
import re
from decimal import Decimal

import pytest

from accounts.models import Organization
from accounts.tenancy import market_scope
from contracts.models import Campaign
from contracts.posting import posting_guide
from contracts.terms import buyer_token
from core.pii import email_hash, phone_hash
from tests.exchange.builder import buyer, client, load, sell
from tests.sessions import member

pytestmark = pytest.mark.django_db

# Every field type, and each way a field travels.
RICH_FIELDS = [
    {"name": "state", "type": "state", "ping": "required"},
    {"name": "zip", "type": "zip", "ping": "required"},
    {"name": "age", "type": "integer", "ping": "optional", "min": 18, "max": 30},
    {"name": "income", "type": "decimal", "ping": "optional", "min": "2000"},
    {"name": "homeowner", "type": "boolean", "ping": "optional"},
    {"name": "coverage", "type": "choice", "ping": "required", "choices": ["full", "liability"]},
    {"name": "birth_date", "type": "date"},
    {"name": "notes", "type": "string", "max_length": 3},
    {"name": "email", "type": "email", "pii": True},
    {"name": "phone", "type": "phone", "pii": True},
    {"name": "first_name", "type": "string", "pii": True},
    {"name": "last_name", "type": "string", "pii": True, "required": False},
]
PAGE = "/portal/campaigns/cmp_seller/"
TERMS = "/portal/campaigns/cmp_seller/terms/"


def campaign() -> Campaign:
    with market_scope():
        return Campaign.objects.prefetch_related("blocked_buyers").get(public_id="cmp_seller")


def row(page: str, name: str) -> list[str]:
    """The cells of a field's row in the page's table of fields, as text."""
    found = re.search(rf'<tr id="field-{name}">(.*?)</tr>', page, re.S)
    assert found, name
    return [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", found[1], re.S)
    ]


def test_the_instructions_list_every_field_with_where_it_travels():
    load(buyer("acme", "30.00"), fields=RICH_FIELDS)
    page = html.unescape(member("owner@seller.test", "seller").get(PAGE).content.decode())

    assert row(page, "state") == [
        "state",
        "state",
        "Required",
        "Required",
        "A US state, DC or territory code (CA, TX…)",
        '"CA"',
    ]
    assert row(page, "age")[2:] == ["Optional", "Optional", "A whole number from 18 to 30", "30"]
    assert row(page, "income")[4:] == [
        'A number (send it as a string to keep the cents: "1250.50"), at least 2000',
        '"2000.00"',
    ]
    assert row(page, "coverage")[2:] == ["Required", "Required", "One of: full, liability", '"full"']
    assert row(page, "birth_date")[2:4] == ["Not sent", "Optional"]
    assert row(page, "notes")[4:] == ["Text, up to 3 characters", '"exa"']
    assert row(page, "email")[:4] == ["email contact detail", "email", "Never", "Required"]
    assert row(page, "last_name")[2:4] == ["Never", "Optional"]
    assert len(re.findall(r'<tr id="field-', page)) == len(RICH_FIELDS)
    # The endpoints, and curl with the campaign's own id and the key as a placeholder.
    for path in ("/api/v1/ping", "/api/v1/post", "/api/v1/leads"):
        assert f"POST http://testserver{path}" in page
    assert page.count('"campaign": "cmp_seller"') == 5  # ping and full lead (JSON, curl), the console
    assert "Authorization: Bearer $GAVEL_API_KEY" in page and "gvl_" not in page


def test_the_generated_examples_are_accepted_by_the_api():
    load(buyer("acme", "30.00"), fields=RICH_FIELDS)
    guide = posting_guide(campaign=campaign())
    assert guide.ping["consumer"] == {
        "email_sha256": email_hash(guide.lead["lead"]["email"]),
        "phone_sha256": phone_hash(guide.lead["lead"]["phone"]),
    }
    assert set(guide.ping["lead"]) == {"state", "zip", "age", "income", "homeowner", "coverage"}

    ping = client().post("/api/v1/ping", guide.ping, format="json")
    assert ping.status_code == 200, ping.content
    assert ping.json()["status"] == "accepted" and ping.json()["test"] is True
    post = client().post("/api/v1/post", guide.post_for(ping.json()["ping_id"]), format="json")
    assert post.status_code == 200, post.content
    assert (post.json()["status"], post.json()["payout"], post.json()["test"]) == ("sold", "24.00", True)
    lead = client().post("/api/v1/leads", guide.lead, format="json")
    assert lead.status_code == 200, lead.content
    assert (lead.json()["status"], lead.json()["test"]) == ("sold", True)


def test_the_default_schema_examples_are_accepted_too():
    load(buyer("acme", "30.00"))
    guide = posting_guide(campaign=campaign())
    answer = client().post("/api/v1/ping", guide.ping, format="json").json()
    assert answer["status"] == "accepted"
    assert client().post("/api/v1/post", guide.post_for(answer["ping_id"]), format="json").json()["status"] == "sold"
    assert "$PING_ID" in guide.curl("post", base_url="https://x") and "<<JSON" in guide.curl(
        "post", base_url="https://x"
    )


def test_a_manager_blocks_a_buyer_by_token_and_sets_the_floor():
    load(buyer("acme", "30.00"), buyer("zeta", "20.00"))
    sell(1)  # acme buys, zeta bids too
    seller = Organization.objects.get(slug="seller")
    acme = Organization.objects.get(slug="acme")
    token = buyer_token(seller_id=seller.pk, buyer_id=acme.pk)
    portal = member("manager@seller.test", "seller", "manager")

    shown = portal.get(TERMS, HTTP_HX_REQUEST="true").content.decode()
    assert token in shown and "Acme" not in shown and "acme" not in shown and "Zeta" not in shown
    response = portal.post(TERMS, {"floor": "2.50", "blocked_buyers": [token]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Saved" in response.content.decode()
    saved = campaign()
    assert saved.floor == Decimal("2.50") and list(saved.blocked_buyers.all()) == [acme]
    # The block holds in the market: acme no longer bids, zeta buys.
    assert sell(2)["payout"] == "16.00"


def test_the_token_is_the_sellers_own():
    load(buyer("acme", "30.00"))
    acme = Organization.objects.get(slug="acme")
    tokens = {buyer_token(seller_id=s.pk, buyer_id=acme.pk) for s in Organization.objects.filter(is_seller=True)}
    assert len(tokens) == 2 and all(re.fullmatch(r"byr_[0-9a-f]{16}", t) for t in tokens)


@pytest.mark.parametrize(
    ("sent", "field", "message"),
    [
        ({"floor": "abc"}, "floor", "A valid number is required."),
        ({"floor": "-1"}, "floor", "Ensure this value is greater than or equal to 0."),
        (
            {"floor": "1.00", "blocked_buyers": ["byr_0000000000000000"]},
            "blocked_buyers",
            "Unknown buyer: byr_0000000000000000.",
        ),
    ],
)
def test_a_bad_term_is_refused_by_its_field_and_nothing_is_saved(sent, field, message):
    load(buyer("acme", "30.00"), campaign={"floor": "3.00"})
    sell(1)
    seller, acme = Organization.objects.get(slug="seller"), Organization.objects.get(slug="acme")
    token = buyer_token(seller_id=seller.pk, buyer_id=acme.pk)
    portal = member("manager@seller.test", "seller", "manager")

    response = portal.post(TERMS, {"blocked_buyers": [token], **sent}, HTTP_HX_REQUEST="true")
    page = html.unescape(response.content.decode())
    assert response.status_code == 200 and "Nothing was saved" in page
    assert message in page
    if field == "floor":
        assert 'aria-describedby="floor-error"' in page and f'value="{sent["floor"]}"' in page  # as typed
    assert campaign().floor == Decimal("3.00") and not campaign().blocked_buyers.all()


def test_an_analyst_reads_the_terms_but_cannot_change_them():
    load(buyer("acme", "30.00"))
    sell(1)
    portal = member("analyst@seller.test", "seller", "analyst")
    shown = portal.get(TERMS, HTTP_HX_REQUEST="true").content.decode()
    assert 'name="floor" value="0.00" inputmode="decimal" disabled' in shown and "Save floor" not in shown
    page = portal.get(PAGE).content.decode()
    assert "a manager or owner runs the test console" in page and 'name="ping"' not in page

    response = portal.post(TERMS, {"floor": "9.00"})
    assert response.status_code == 403 and "change terms" in response.content.decode()
    assert campaign().floor == Decimal("0.00")
    assert portal.post("/portal/campaigns/cmp_seller/console/", {"ping": "{}", "post": "{}"}).status_code == 403


def test_a_buyer_opening_the_campaigns_is_told_the_page_is_for_sellers():
    load(buyer("acme", "30.00"))
    portal = member("owner@acme.test", "acme")
    response = portal.get("/portal/campaigns/")
    assert response.status_code == 403
    assert "This page is for sellers" in response.content.decode()
    assert "No campaigns yet" not in response.content.decode()
    for url in (PAGE, TERMS):  # one campaign's pages: not the buyer's, so not found, as for any outsider
        assert portal.get(url).status_code == 404, url


def test_another_sellers_campaign_is_not_found():
    load(buyer("acme", "30.00"))
    outsider = member("owner@seller2.test", "seller2")
    assert outsider.get(PAGE).status_code == 404
    assert outsider.get(TERMS).status_code == 404
    assert outsider.post(TERMS, {"floor": "5"}).status_code == 404
    assert outsider.post("/portal/campaigns/cmp_seller/console/", {"ping": "{}", "post": "{}"}).status_code == 404
    assert campaign().floor == Decimal("0.00")
