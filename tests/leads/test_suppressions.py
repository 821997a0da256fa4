"""Suppressions: the API (file, replay, list, every refusal), both scopes enforced at ping, post,
full lead, re-auction and delivery whatever the format of the email or phone, the public opt-out
page, and the portal's CSV upload."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from core.pii import email_hash, example_phone, phone_hash
from exchange.auction.book import book_current, book_invalidate
from exchange.models import Ping, Sale
from exchange.services import lead_reauction_run
from exchange.services.selling import LeadPackage, sale_attempt
from leads.crypto import pii_decrypt
from leads.models import Lead, Suppression, SuppressionUpload
from leads.services import suppression_upload_process
from tests.exchange.builder import (
    BUYER_KEY_PREFIX,
    SELLER_KEY,
    buyer,
    client,
    lead_body,
    load,
    org,
    ping,
    post,
    post_body,
)
from tests.sessions import member

pytestmark = pytest.mark.django_db

HI_KEY = f"{BUYER_KEY_PREFIX}hi_000000"
LO_KEY = f"{BUYER_KEY_PREFIX}lo_000000"
# person(1) of the builder: consumer1@example.com, +12015550101.
EMAIL_1 = email_hash("consumer1@example.com")
PHONE_1 = phone_hash("+12015550101")


@pytest.fixture
def two_buyers():
    load(buyer("hi", "30.00"), buyer("lo", "20.00"), reauction_cycles=2)


def suppress(key: str, **body):
    return client(key).post("/api/v1/suppressions", body, format="json")


def waterfall_of(ping_id: str) -> dict[str, str]:
    with market_scope():
        steps = Ping.objects.get(public_id=ping_id).waterfall
    return {step["contract"]: step["reason"] for step in steps}


def sold_to(lead_id: str) -> list[str]:
    with market_scope():
        return list(
            Sale.objects.filter(lead__public_id=lead_id, status="sold").values_list("contract__public_id", flat=True)
        )


# --- the API -------------------------------------------------------------------------------------


def test_a_seller_files_an_opt_out_and_the_same_consumer_again_answers_it(two_buyers):
    created = suppress(SELLER_KEY, email=" Consumer1@Example.COM ", scope="exchange", reason="asked by phone")
    assert created.status_code == 201, created.content
    body = created.json()
    assert set(body) == {"suppression_id", "kind", "scope", "consumer_sha256", "reason", "created_at"}
    assert body["suppression_id"].startswith("sup_")
    assert (body["kind"], body["scope"], body["consumer_sha256"], body["reason"]) == (
        "email",
        "exchange",
        EMAIL_1,
        "asked by phone",
    )
    assert "consumer1" not in created.content.decode().lower()

    for again in ({"email": "consumer1@example.com"}, {"email_sha256": EMAIL_1.upper()}):
        replay = suppress(SELLER_KEY, scope="exchange", reason="other", **again)
        assert replay.status_code == 200
        assert replay.json() == body
    assert Suppression.objects.count() == 1


@pytest.mark.parametrize("written", ["(201) 555-0101", "+1 201-555-0101", "201.555.0101", "+12015550101"])
def test_every_way_of_writing_a_phone_is_one_consumer(two_buyers, written):
    first = suppress(HI_KEY, phone="+1 (201) 555 0101", scope="organization")
    assert first.status_code == 201 and first.json()["consumer_sha256"] == PHONE_1
    again = suppress(HI_KEY, phone=written, scope="organization")
    assert (again.status_code, again.json()["suppression_id"]) == (200, first.json()["suppression_id"])


def test_one_consumer_in_both_scopes_is_two_suppressions(two_buyers):
    assert suppress(HI_KEY, email="consumer1@example.com", scope="organization").status_code == 201
    assert suppress(HI_KEY, email="consumer1@example.com", scope="exchange").status_code == 201
    assert suppress(LO_KEY, email="consumer1@example.com", scope="exchange").status_code == 201
    assert Suppression.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"scope": "exchange"}, {"email"}),
        ({"email": "a@example.com", "phone": "+12015550101", "scope": "exchange"}, {"email", "phone"}),
        ({"email": "not an email", "scope": "exchange"}, {"email"}),
        ({"email": "a@example", "scope": "exchange"}, {"email"}),
        ({"phone": "555-0100", "scope": "exchange"}, {"phone"}),
        ({"phone": "+1 555 555 0100", "scope": "exchange"}, {"phone"}),
        ({"email_sha256": "abc", "scope": "exchange"}, {"email_sha256"}),
        ({"phone_sha256": "z" * 64, "scope": "exchange"}, {"phone_sha256"}),
        ({"email": "a@example.com"}, {"scope"}),
        ({"email": "a@example.com", "scope": "everyone"}, {"scope"}),
        ({"email": "a@example.com", "scope": "exchange", "reason": "x" * 201}, {"reason"}),
        ({"email": "a@example.com", "scope": "exchange", "name": "Jane"}, {"name"}),
        ({"email": 7, "scope": "exchange"}, {"email"}),
    ],
)
def test_a_bad_suppression_is_a_422_naming_the_field_and_nothing_is_filed(two_buyers, body, fields):
    response = suppress(HI_KEY, **body)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == fields
    assert Suppression.objects.count() == 0


def test_a_seller_has_no_list_of_its_own(two_buyers):
    response = suppress(SELLER_KEY, email="a@example.com", scope="organization")
    assert response.status_code == 422
    assert list(response.json()["error"]["fields"]) == ["scope"]
    assert Suppression.objects.count() == 0


def test_no_key_or_a_bad_key_is_refused(two_buyers):
    anonymous = APIClient().post("/api/v1/suppressions", {"email": "a@example.com", "scope": "exchange"}, format="json")
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "authentication_failed")
    bad = client("gvl_nonsense").get("/api/v1/suppressions")
    assert bad.status_code == 401
    malformed = client(HI_KEY).post("/api/v1/suppressions", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert Suppression.objects.count() == 0


def test_a_key_without_leads_or_purchases_is_refused(two_buyers):
    with market_scope():
        key = ApiKey.objects.get(organization__slug="hi")
        key.scopes = ["contracts"]
        key.save()
    response = suppress(HI_KEY, email="a@example.com", scope="exchange")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    assert Suppression.objects.count() == 0


def test_the_list_is_ones_own_hashes_only_filtered_by_scope(two_buyers):
    suppress(HI_KEY, email="consumer1@example.com", scope="organization", reason="customer")
    suppress(HI_KEY, phone="(201) 555-0102", scope="exchange")
    suppress(LO_KEY, email="consumer3@example.com", scope="organization")  # another buyer's
    suppress(SELLER_KEY, email="consumer4@example.com", scope="exchange")  # a seller's
    listing = client(HI_KEY).get("/api/v1/suppressions").json()
    assert [(s["kind"], s["scope"]) for s in listing["results"]] == [("phone", "exchange"), ("email", "organization")]
    assert "@" not in str(listing)
    only = client(HI_KEY).get("/api/v1/suppressions?scope=organization").json()["results"]
    assert [(s["consumer_sha256"], s["reason"]) for s in only] == [(EMAIL_1, "customer")]
    one = client(HI_KEY).get(f"/api/v1/suppressions?consumer_sha256={EMAIL_1}").json()["results"]
    assert len(one) == 1
    paged = client(HI_KEY).get("/api/v1/suppressions?limit=1").json()
    assert len(paged["results"]) == 1 and paged["next"]
    for query in ("scope=everyone", "email=consumer1@example.com", "consumer_sha256=abc"):
        response = client(HI_KEY).get(f"/api/v1/suppressions?{query}")
        assert response.status_code == 422, query
    assert client(SELLER_KEY).get("/api/v1/suppressions").json()["results"][0]["kind"] == "email"


def test_an_idempotency_key_replays_the_first_answer(two_buyers):
    body = {"email": "consumer9@example.com", "scope": "exchange"}
    first = client(HI_KEY).post("/api/v1/suppressions", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client(HI_KEY).post("/api/v1/suppressions", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    other = client(HI_KEY).post(
        "/api/v1/suppressions", {**body, "scope": "organization"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert Suppression.objects.count() == 1


# --- enforcement ---------------------------------------------------------------------------------


def test_an_opt_out_rejects_the_ping_whatever_the_format_filed(two_buyers):
    suppress(LO_KEY, email="  CONSUMER1@example.com", scope="exchange")
    answer = ping(1)
    assert (answer["status"], answer["reason"]) == ("rejected", "suppressed")
    assert set(waterfall_of(answer["ping_id"]).values()) == {"suppressed"}
    assert ping(2)["status"] == "accepted"


def test_a_buyers_own_list_keeps_only_that_buyer_out_of_the_auction(two_buyers):
    suppress(HI_KEY, phone="(201) 555-0101", scope="organization")
    answer = ping(1)
    assert (answer["status"], answer["payout"]) == ("accepted", "16.00")  # lo's 20.00 less the margin
    assert waterfall_of(answer["ping_id"]) == {"ctr_hi": "suppressed", "ctr_lo": "won"}
    sold = post(answer["ping_id"], 1)
    assert sold["status"] == "sold" and sold_to(sold["lead_id"]) == ["ctr_lo"]
    # Another consumer still goes to hi.
    assert waterfall_of(ping(2)["ping_id"])["ctr_hi"] == "won"


def test_an_opt_out_between_ping_and_post_rejects_the_post_and_keeps_no_pii(two_buyers):
    answer = ping(1)
    assert answer["status"] == "accepted"
    suppress(SELLER_KEY, phone="+1 201-555-0101", scope="exchange")
    rejected = post(answer["ping_id"], 1)
    assert (rejected["status"], rejected["reason"]) == ("rejected", "suppressed")
    with market_scope():
        lead = Lead.objects.get(public_id=rejected["lead_id"])
        assert Sale.objects.count() == 0
    assert pii_decrypt(lead.pii_encrypted) == {}


def test_a_buyers_list_filed_between_ping_and_post_passes_the_lead_to_the_next_bid(two_buyers):
    answer = ping(1)
    assert waterfall_of(answer["ping_id"])["ctr_hi"] == "won"
    suppress(HI_KEY, email="Consumer1@EXAMPLE.com ", scope="organization")
    sold = post(answer["ping_id"], 1)
    assert sold["status"] == "sold" and sold_to(sold["lead_id"]) == ["ctr_lo"]


def test_the_post_is_checked_with_its_own_contact_when_the_ping_hashed_none(two_buyers):
    suppress(HI_KEY, phone="2015550101", scope="organization")
    body = {"campaign": "cmp_seller", "lead": {"state": "CA", "zip": "94107", "age": 34}, "consumer": {}}
    answer = client().post("/api/v1/ping", body, format="json").json()
    assert waterfall_of(answer["ping_id"])["ctr_hi"] == "won"  # nothing to match at the ping
    sold = client().post("/api/v1/post", post_body(answer["ping_id"], 1), format="json").json()
    assert sold["status"] == "sold" and sold_to(sold["lead_id"]) == ["ctr_lo"]


def test_full_leads_honour_both_scopes(two_buyers):
    suppress(HI_KEY, phone="(201) 555-0101", scope="organization")
    sold = client().post("/api/v1/leads", lead_body(1), format="json").json()
    assert sold["status"] == "sold" and sold_to(sold["lead_id"]) == ["ctr_lo"]
    suppress(LO_KEY, email=" consumer2@EXAMPLE.COM", scope="exchange")
    rejected = client().post("/api/v1/leads", lead_body(2), format="json").json()
    assert (rejected["status"], rejected["reason"]) == ("rejected", "suppressed")
    with market_scope():
        assert pii_decrypt(Lead.objects.get(public_id=rejected["lead_id"]).pii_encrypted) == {}


def _pending_lead(n: int) -> int:
    """Consumer ``n``'s full lead, left pending for a re-auction while every contract is paused."""
    with market_scope():
        BuyerContract.objects.update(status="paused")
    book_invalidate()
    answer = client().post("/api/v1/leads", lead_body(n), format="json").json()
    with market_scope():
        BuyerContract.objects.update(status="active")
        Lead.objects.filter(public_id=answer["lead_id"]).update(status="pending", reason="")
        pk = Lead.objects.get(public_id=answer["lead_id"]).pk
    book_invalidate()
    return pk


def test_a_re_auction_skips_a_buyer_that_listed_the_consumer(two_buyers):
    pk = _pending_lead(1)
    suppress(HI_KEY, phone="+1 201 555 0101", scope="organization")
    assert lead_reauction_run(lead_id=pk, cycle=1) == "sold"
    with market_scope():
        lead = Lead.objects.get(pk=pk)
    assert sold_to(lead.public_id) == ["ctr_lo"]


def test_a_re_auction_of_a_consumer_who_opted_out_ends_the_lead(two_buyers):
    pk = _pending_lead(1)
    suppress(SELLER_KEY, email="consumer1@example.com", scope="exchange")
    assert lead_reauction_run(lead_id=pk, cycle=1) == "unsold"
    with market_scope():
        lead = Lead.objects.get(pk=pk)
        assert Sale.objects.filter(lead=lead).count() == 0
    assert lead.reason == "suppressed"


def test_delivery_refuses_a_suppressed_buyer_even_without_a_fresh_auction(two_buyers):
    """The last gate: a sale attempt reads the lists itself when nobody read them for it."""
    sold = client().post("/api/v1/leads", lead_body(3), format="json").json()
    suppress(LO_KEY, email="consumer3@example.com", scope="organization")
    book = book_current()
    offer = next(iter(book.offers.values()))
    with market_scope():
        lead = Lead.objects.get(public_id=sold["lead_id"])
        contract = offer.contracts_by_id[BuyerContract.objects.get(public_id="ctr_lo").pk]
    attempt = sale_attempt(
        lead=lead,
        contract=contract,
        price=Decimal("20.00"),
        margin_percent=Decimal(0),
        bid=None,
        package=LeadPackage.of({}, {}, offer),
        offer_slug=offer.slug,
        secret="",
    )
    assert (attempt.sale, attempt.reason) == (None, "suppressed")
    with market_scope():
        assert Sale.objects.filter(organization=org("lo")).count() == 0  # nothing reserved or sold


# --- the portal's CSV upload ---------------------------------------------------------------------


def _csv_of_20000() -> tuple[str, list[list[str]]]:
    """20 000 data rows under a header: emails, phones written three ways, repeats and bad rows."""
    lines = ["email,phone"]
    bad: list[list[str]] = []
    for n in range(20000):
        row = n + 2  # the file's line: the header is line 1
        if n % 1000 == 7:
            lines.append("not-an-email,")
            bad.append([str(row), "not-an-email", "Email must contain exactly one @."])
        elif n % 1000 == 9:
            lines.append(",555-0100")
            bad.append([str(row), "555-0100", "Phone is not a valid number."])
        elif n % 500 == 3:
            lines.append("person0@example.com,")  # a repeat of row 2
        elif n % 2:
            lines.append(
                f",({example_phone(n % 9000)[2:5]}) {example_phone(n % 9000)[5:8]}-{example_phone(n % 9000)[8:]}"
            )
        else:
            lines.append(f" Person{n}@Example.com ,")
    return "\n".join(lines) + "\n", bad


def test_a_manager_uploads_20000_rows_with_progress_duplicates_and_an_error_report(two_buyers):
    manager = member("boss@hi.example", "hi", "manager")
    content, bad = _csv_of_20000()
    # One of the phones is already on the list: a duplicate, not an error.
    suppress(HI_KEY, phone=example_phone(1), scope="organization")
    response = manager.post(
        "/portal/suppressions/upload",
        {"file": SimpleUploadedFile("dnc.csv", content.encode(), "text/csv"), "scope": "organization", "reason": "DNC"},
    )
    assert response.status_code == 302
    with market_scope():
        upload = SuppressionUpload.objects.get()
    assert (upload.status, upload.total, upload.done) == ("queued", 20000, 0)
    progress = manager.get(f"/portal/suppressions/uploads/{upload.public_id}/").content.decode()
    assert 'hx-trigger="every 1s"' in progress and "0 of 20000 rows" in progress

    with market_scope():
        assert suppression_upload_process(upload_id=upload.pk, batch=5000) == "done"
    with market_scope():
        upload.refresh_from_db()
    repeats = sum(1 for n in range(20000) if n % 500 == 3 and n % 1000 not in (7, 9))
    odd = {n % 9000 for n in range(20000) if n % 2 and n % 1000 not in (7, 9) and n % 500 != 3}
    phone_repeats = sum(1 for n in range(20000) if n % 2 and n % 1000 not in (7, 9) and n % 500 != 3) - len(odd)
    assert (upload.status, upload.done, upload.error_count, upload.content) == ("done", 20000, 40, "")
    assert upload.duplicates == repeats + phone_repeats + 1
    assert upload.added + upload.duplicates + upload.error_count == 20000
    assert Suppression.objects.filter(organization=org("hi"), scope="organization").count() == upload.added + 1
    done = manager.get(f"/portal/suppressions/uploads/{upload.public_id}/").content.decode()
    assert "hx-trigger" not in done and "20000 of 20000 rows" in done and "Error report" in done

    report = manager.get(f"/portal/suppressions/uploads/{upload.public_id}/errors.csv")
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert rows[0] == ["row", "value", "error"] and rows[1:] == bad

    # The uploaded consumers are kept from hi's contracts, written as the seller sends them.
    found = manager.get("/portal/suppressions/?q=+1%20(201)%20555-0101").content.decode()
    assert phone_hash("+12015550101")[:16] in found


def test_an_analyst_cannot_upload_and_sees_why(two_buyers):
    analyst = member("reader@hi.example", "hi", "analyst")
    page = analyst.get("/portal/suppressions/").content.decode()
    assert "Ask a manager" in page
    response = analyst.post(
        "/portal/suppressions/upload",
        {"file": SimpleUploadedFile("dnc.csv", b"a@example.com\n"), "scope": "organization"},
    )
    assert response.status_code == 403
    with market_scope():
        assert SuppressionUpload.objects.count() == 0


def test_a_bad_file_is_refused_with_a_message(two_buyers):
    manager = member("boss@hi.example", "hi", "manager")
    response = manager.post(
        "/portal/suppressions/upload", {"file": SimpleUploadedFile("dnc.csv", b"\xff\xfe\x00bad"), "scope": "exchange"}
    )
    assert response.status_code == 422 and "not UTF-8" in response.content.decode()
    with market_scope():
        assert SuppressionUpload.objects.count() == 0


def test_a_manager_removes_an_entry_of_the_own_list_but_not_an_opt_out(two_buyers):
    manager = member("boss@hi.example", "hi", "manager")
    own = suppress(HI_KEY, email="consumer1@example.com", scope="organization").json()["suppression_id"]
    opt_out = suppress(HI_KEY, email="consumer1@example.com", scope="exchange").json()["suppression_id"]
    assert manager.post(f"/portal/suppressions/{opt_out}/remove").status_code == 404
    assert manager.post(f"/portal/suppressions/{own}/remove").status_code == 302
    assert list(Suppression.objects.values_list("public_id", flat=True)) == [opt_out]


# --- the public opt-out page ---------------------------------------------------------------------


def test_a_consumer_opts_out_and_the_next_ping_is_rejected(two_buyers):
    web = Client(enforce_csrf_checks=True)
    page = web.get("/opt-out")
    assert page.status_code == 200 and 'for="id_contact"' in page.content.decode()
    token = page.cookies["csrftoken"].value
    assert web.post("/opt-out", {"contact": "(201) 555-0101"}).status_code == 403  # no CSRF token
    done = web.post("/opt-out", {"contact": "(201) 555-0101", "csrfmiddlewaretoken": token}, follow=True)
    assert "You have opted out" in done.content.decode()
    suppression = Suppression.objects.get()
    assert (suppression.consumer_hash, suppression.scope, suppression.organization_id, suppression.source) == (
        PHONE_1,
        "exchange",
        None,
        "opt_out",
    )
    assert ping(1)["reason"] == "suppressed"


def test_the_opt_out_page_refuses_bad_input_bots_and_floods(two_buyers):
    web = Client()
    bad = web.post("/opt-out", {"contact": "not a number"})
    assert bad.status_code == 422 and "Enter an email address or a phone number" in bad.content.decode()
    bot = web.post("/opt-out", {"contact": "consumer5@example.com", "website": "http://spam.example"})
    assert bot.status_code == 302 and Suppression.objects.count() == 0
    for n in range(8):  # ten requests an hour from one address, the two above included
        assert web.post("/opt-out", {"contact": f"consumer{n}@example.com"}).status_code == 302
    limited = web.post("/opt-out", {"contact": "consumer9@example.com"})
    assert limited.status_code == 429 and "Try again in an hour" in limited.content.decode()
    assert Suppression.objects.count() == 8
