"""Privacy requests: filing (API, public page, admin), deadlines, deletion everywhere, access export."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.core import mail
from django.db import models
from django.test import Client
from django.utils import timezone

from accounts.tenancy import market_scope
from billing.models import LedgerAccount
from demo.buyers import Behaviour
from exchange.models import DeliveryAttempt, Sale
from exchange.returns.services import return_decide, return_request
from exchange.webhooks import Event, EventDelivery, endpoint_create
from exchange.webhooks.tasks import webhook_deliver
from leads.crypto import PiiKeyError, pii_decrypt
from leads.models import ConsentRecord, Lead, PrivacyRequest, Suppression
from leads.privacy import business_days_after, deadlines, privacy_request_process
from tests.exchange.builder import SELLER2_KEY, SELLER_KEY, buyer, client, load, org, sha

pytestmark = pytest.mark.django_db

EMAIL = "Consumer7@Example.com"  # as the sellers sent it
EMAIL_NORM = "consumer7@example.com"
PHONE = "(201) 555-0107"  # as sent
PHONE_E164 = "+12015550107"
IP, AGENT = "198.51.100.77", "Mozilla/5.0 (consumer-seven-agent)"


def local(*args: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime(*args), timezone.get_current_timezone())


# --- deadlines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "confirm_by"),
    [
        ((2026, 12, 7, 9, 30), (2026, 12, 21, 9, 30)),  # a Monday: two weeks later
        ((2026, 12, 11, 16, 0), (2026, 12, 25, 16, 0)),  # a Friday (public holidays are not skipped)
        ((2026, 12, 12, 10, 0), (2026, 12, 25, 10, 0)),  # a Saturday: counting starts Monday
        ((2026, 12, 13, 23, 59), (2026, 12, 25, 23, 59)),  # a Sunday
    ],
)
def test_confirmation_is_due_ten_business_days_later_skipping_weekends(received, confirm_by):
    assert business_days_after(local(*received), 10) == local(*confirm_by)


def test_the_answer_is_due_45_days_after_receipt_and_a_late_request_is_overdue():
    received = local(2027, 2, 26, 12, 0)
    confirm_by, answer_by = deadlines(received)
    assert (confirm_by, answer_by) == (local(2027, 3, 12, 12, 0), received + dt.timedelta(days=45))
    request = PrivacyRequest(
        status="received", received_at=received, confirm_due_at=confirm_by, answer_due_at=answer_by
    )
    assert not request.overdue(confirm_by)
    assert request.overdue(confirm_by + dt.timedelta(seconds=1))
    request.status = "confirmed"
    assert not request.overdue(answer_by) and request.overdue(answer_by + dt.timedelta(seconds=1))
    request.status = "completed"
    assert not request.overdue(answer_by + dt.timedelta(days=100))


# --- the API ----------------------------------------------------------------------------------


def test_an_organization_files_a_request_it_alone_can_read(settings):
    load(buyer("acme"))
    answer = client().post("/api/v1/privacy-requests", {"kind": "access", "phone": PHONE}, format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["request_id"].startswith("prv_") and body["status"] == "confirmed"
    assert (body["kind"], body["source"], body["result"]) == ("access", "api", None)
    filed = PrivacyRequest.objects.get(public_id=body["request_id"])
    assert (filed.organization, filed.phone_hash, filed.email_hash) == (org("seller"), sha(PHONE_E164), "")
    assert filed.confirmed_at == filed.received_at
    assert client().get(f"/api/v1/privacy-requests/{filed.public_id}").json()["status"] == "confirmed"
    outsider = client(SELLER2_KEY).get(f"/api/v1/privacy-requests/{filed.public_id}")
    assert (outsider.status_code, outsider.json()["error"]["code"]) == (404, "not_found")
    assert client().get("/api/v1/privacy-requests/prv_nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "delete"}, "email"),
        ({"kind": "erase", "email": EMAIL}, "kind"),
        ({"kind": "delete", "email": "not-an-email"}, "email"),
        ({"kind": "delete", "phone": "555-0100"}, "phone"),
        ({"kind": "delete", "email": EMAIL, "name": "Jane"}, "name"),
    ],
)
def test_a_bad_request_is_a_422_naming_the_field_and_files_nothing(body, field):
    load(buyer("acme"))
    answer = client().post("/api/v1/privacy-requests", body, format="json")
    assert answer.status_code == 422, answer.content
    assert field in answer.json()["error"]["fields"]
    assert not PrivacyRequest.objects.exists()


def test_a_key_without_the_leads_scope_is_refused():
    load(buyer("acme"))
    answer = client("gvl_test_buyer_acme_000000").post(
        "/api/v1/privacy-requests", {"kind": "delete", "email": EMAIL}, format="json"
    )
    assert answer.status_code == 403 and not PrivacyRequest.objects.exists()
    assert client("gvl_nope").get("/api/v1/privacy-requests/prv_x").status_code == 401


# --- the public page --------------------------------------------------------------------------


def _link(message: Any) -> str:
    (url,) = re.findall(r"https?://\S+/privacy/confirm/\S+", message.body)
    return url.split("testserver", 1)[1]


def test_the_public_page_emails_a_one_time_link_that_confirms_the_request(settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    browser = Client(REMOTE_ADDR="192.0.2.10")
    assert "Delete my personal data" in browser.get("/privacy/").content.decode()
    sent = browser.post("/privacy/", {"kind": "delete", "email": EMAIL, "phone": PHONE, "website": ""})
    assert sent.status_code == 200 and "Check your email" in sent.content.decode()
    filed = PrivacyRequest.objects.get()
    assert (filed.status, filed.source, filed.email_hash, filed.phone_hash) == (
        "received",
        "public",
        sha(EMAIL_NORM),
        sha(PHONE_E164),
    )
    (message,) = mail.outbox
    assert message.to == [EMAIL_NORM] and filed.public_id in message.body
    link = _link(message)
    shown = browser.get(link)  # a mail scanner's prefetch confirms nothing
    assert "Confirm my request" in shown.content.decode()
    assert PrivacyRequest.objects.get().status == "received"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        done = browser.post(link)
    assert done.status_code == 200 and "Request confirmed" in done.content.decode()
    assert len(queued) == 1  # the processing task, queued on commit
    assert PrivacyRequest.objects.get().status == "confirmed"
    again = browser.post(link)
    assert again.status_code in (404, 422) and "cannot be used" in again.content.decode()


def test_an_expired_link_confirms_nothing(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    browser = Client(REMOTE_ADDR="192.0.2.11")
    browser.post("/privacy/", {"kind": "access", "email": EMAIL, "phone": PHONE})
    filed = PrivacyRequest.objects.get()
    assert filed.phone_hash == ""  # an access request is matched on the confirmed email alone
    PrivacyRequest.objects.update(token_expires_at=timezone.now() - dt.timedelta(seconds=1))
    answer = browser.post(_link(mail.outbox[0]))
    assert answer.status_code == 422 and "expired" in answer.content.decode()
    assert PrivacyRequest.objects.get().status == "received"
    assert browser.post("/privacy/confirm/not-a-token").status_code == 404


def test_the_public_page_refuses_bad_input_bots_and_floods(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    browser = Client(REMOTE_ADDR="192.0.2.12")
    bad = browser.post("/privacy/", {"kind": "delete", "email": "nope", "phone": ""})
    assert bad.status_code == 422 and "valid email" in bad.content.decode()
    bad_phone = browser.post("/privacy/", {"kind": "delete", "email": EMAIL, "phone": "12"})
    assert bad_phone.status_code == 422 and "phone" in bad_phone.content.decode().lower()
    bot = browser.post("/privacy/", {"kind": "delete", "email": EMAIL, "website": "http://spam.test"})
    assert bot.status_code == 200 and "Check your email" in bot.content.decode()
    assert not PrivacyRequest.objects.exists() and not mail.outbox
    for _ in range(2):
        assert browser.post("/privacy/", {"kind": "delete", "email": EMAIL}).status_code == 200
    flooded = browser.post("/privacy/", {"kind": "delete", "email": EMAIL})
    assert flooded.status_code == 429 and "Too many requests" in flooded.content.decode()
    assert PrivacyRequest.objects.count() == 2
    other = Client(REMOTE_ADDR="192.0.2.13").post("/privacy/", {"kind": "delete", "email": EMAIL})
    assert other.status_code == 200 and PrivacyRequest.objects.count() == 3


# --- deletion everywhere ----------------------------------------------------------------------


def _lead_body(
    campaign: str, *, email: str = EMAIL, phone: str = PHONE, ip: str = IP, agent: str = AGENT
) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "test": False,
        "lead": {"state": "CA", "zip": "94107", "age": 34, "email": email, "phone": phone, "first_name": "Jane"},
        "consent": {
            "text": "I agree to be contacted.",
            "captured_at": "2026-11-22T10:00:00Z",
            "ip": ip,
            "user_agent": agent,
            "page_url": f"https://form.example/quote?email={email}",
        },
        "tracking": {"sub_id1": email, "sub_id2": "spring"},
    }


NEEDLES = [EMAIL, EMAIL_NORM, PHONE, PHONE_E164, "2015550107", "201-555-0107", IP, AGENT]


def _values(model: type[models.Model]) -> list[str]:
    """Every text, JSON and binary value of every row of ``model``, encrypted ones decrypted."""
    names = [
        f.attname
        for f in model._meta.concrete_fields
        if isinstance(f, models.CharField | models.TextField | models.JSONField | models.BinaryField)
        or isinstance(f, models.GenericIPAddressField)
    ]
    found: list[str] = []
    if not names:
        return found
    for row in model._base_manager.values_list(*names):
        for value in row:
            if value in (None, "", [], {}):
                continue
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if isinstance(value, bytes | memoryview):
                text = bytes(value).decode("utf-8", "replace")
            found.append(text)
            if isinstance(value, str) and value.startswith("gAAAA"):
                try:
                    found.append(json.dumps(pii_decrypt(value)))
                except PiiKeyError:
                    pass
    return found


def _scan_everything() -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    with market_scope():
        for model in apps.get_models():
            for text in _values(model):
                for needle in NEEDLES:
                    if needle.lower() in text.lower():
                        hits.setdefault(model._meta.label, []).append(text[:200])
    return hits


def _money() -> list[Any]:
    with market_scope():
        sales = list(Sale.objects.order_by("pk").values_list("public_id", "status", "price", "payout", "margin"))
        accounts = list(LedgerAccount.objects.order_by("pk").values_list("pk", "balance"))
        entries = apps.get_model("billing", "LedgerEntry")._base_manager.count()
    return [sales, accounts, entries]


def test_a_deletion_leaves_no_trace_of_the_consumer_and_keeps_the_money(
    buyers, receiver, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    buyers.behaviours["picky"] = Behaviour(accept=False, reject_reason=f"duplicate: {EMAIL_NORM} already in CRM")
    buyers.behaviours["hook"] = Behaviour(accept=True)

    def webhook(slug: str, price: str) -> dict[str, Any]:
        delivery = {
            "method": "webhook",
            "url": buyers.url(slug, "deliver"),
            "timeout_ms": 2000,
            "accept": {"path": "status", "equals": "accepted"},
            "reason_path": "message",
        }
        return buyer(slug, price, delivery=delivery)

    load(webhook("picky", "40.00"), webhook("hook", "30.00"), buyer("plain", "20.00"))
    with market_scope():
        hook_endpoint, _ = endpoint_create(organization=org("hook"), url=receiver.url)
        endpoint_create(organization=org("seller"), url=receiver.url)
    # The receiver echoes the consumer in its answers: the webhook logs hold them until erased.
    receiver.script = [(200, f"got it for {EMAIL_NORM}".encode(), {})] * 20

    with django_capture_on_commit_callbacks(execute=True):
        first = client(SELLER_KEY).post("/api/v1/leads", _lead_body("cmp_seller"), format="json")
        second = client(SELLER2_KEY).post(
            "/api/v1/leads",
            _lead_body("cmp_seller2", email=EMAIL_NORM, phone=PHONE_E164),
            format="json",
            HTTP_IDEMPOTENCY_KEY="retry-7",
        )
    assert (first.json()["status"], second.json()["status"]) == ("sold", "sold"), (first.content, second.content)
    with market_scope():
        sold = list(Sale.objects.filter(status="sold").order_by("pk"))
        ret = return_request(
            buyer=sold[0].organization,
            sale_public_id=sold[0].public_id,
            reason="bad_phone",
            note=f"Called {PHONE}, not theirs",
        )
        with django_capture_on_commit_callbacks(execute=True):
            return_decide(ret=ret, approve=True, user=None, note="ok")
        other_consumer = client(SELLER_KEY).post(
            "/api/v1/leads",
            _lead_body(
                "cmp_seller", email="other@example.com", phone="+12015550199", ip="192.0.2.99", agent="Other/1.0"
            ),
            format="json",
        )
    assert other_consumer.json()["status"] == "sold"
    with market_scope():
        for delivery in EventDelivery.objects.all():
            webhook_deliver.apply(kwargs={"delivery_id": delivery.pk, "organization_id": delivery.organization_id})
    assert _scan_everything(), "the scan must see the consumer before the deletion"
    before = _money()

    with django_capture_on_commit_callbacks(execute=False):
        answer = client(SELLER2_KEY).post("/api/v1/privacy-requests", {"kind": "delete", "email": EMAIL}, format="json")
    assert answer.status_code == 201
    filed = PrivacyRequest.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert privacy_request_process(request_id=filed.pk) == "completed"
        assert privacy_request_process(request_id=filed.pk) == "skipped"  # a task delivered twice
    receiver.script = []  # the buyer, having erased the consumer, no longer quotes them
    with market_scope():
        erased_events = list(
            EventDelivery.objects.filter(event__type="lead.erased").select_related("event").order_by("pk")
        )
        for delivery in erased_events:
            webhook_deliver.apply(kwargs={"delivery_id": delivery.pk, "organization_id": delivery.organization_id})

    hits = _scan_everything()
    assert hits == {}, json.dumps(hits, indent=1)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [n for n in NEEDLES if n.lower() in logged.lower()]
    assert _money() == before

    filed.refresh_from_db()
    assert (filed.status, filed.contact_encrypted) == ("completed", "")
    # Counts of cells changed (a log row may count once per column it held the consumer in).
    assert {k: v for k, v in filed.result.items() if k not in ("delivery_attempts", "webhook_logs", "sales")} == {
        "leads": 2,
        "consent_records": 2,
        "suppressions": 2,
        "pings": 2,
        "return_notes": 1,
        "idempotent_responses": 0,
        "erasure_notices": 4,
    }
    assert filed.result["delivery_attempts"] > 0 and filed.result["webhook_logs"] > 0 and filed.result["sales"] > 0
    assert set(Suppression.objects.values_list("consumer_hash", flat=True)) >= {sha(EMAIL_NORM), sha(PHONE_E164)}
    with market_scope():
        leads = list(Lead.objects.exclude(email_hash=sha("other@example.com")).order_by("pk"))
        assert all(lead.erased_at and pii_decrypt(lead.pii_encrypted) == {} for lead in leads)
        consents = list(ConsentRecord.objects.filter(lead__in=leads).order_by("pk"))
        assert [(c.ip, c.user_agent, c.page_url, c.text) for c in consents] == [
            (None, "", "https://form.example/quote", "I agree to be contacted.")
        ] * 2
        other = Lead.objects.get(email_hash=sha("other@example.com"))
        assert pii_decrypt(other.pii_encrypted)["email"] == "other@example.com" and other.erased_at is None
        # The rejecting buyer quoted the consumer on every lead, the other consumer's too: all blanked.
        assert (
            list(DeliveryAttempt.objects.filter(outcome="rejected").values_list("reason", flat=True))
            == ["duplicate: [erased] already in CRM"] * 3
        )
    # Each buyer that had the lead heard of it: the returned sale, the kept one, the rejected deliveries.
    with market_scope():
        had_it = [
            s.public_id
            for s in Sale.objects.filter(lead__in=leads)
            if s.status in ("sold", "returned") or s.delivery_attempts.exists()
        ]
        notices = [e.data["sale_id"] for e in Event.objects.filter(type="lead.erased")]
    assert sorted(notices) == sorted(had_it) and len(had_it) == 4 == filed.result["erasure_notices"]
    heard = [json.loads(r.body) for r in receiver.requests]
    assert [h["data"]["sale_id"] for h in heard if h["type"] == "lead.erased"] == [
        d.event.data["sale_id"] for d in erased_events if d.endpoint_id == hook_endpoint.pk
    ]

    # The purchase reads erased, without contact details, in the API and the portal.
    with market_scope():
        kept = Sale.objects.select_related("organization").get(lead__in=leads, status="sold")
    key = f"gvl_test_buyer_{kept.organization.slug}_000000"
    purchase = client(key).get(f"/api/v1/purchases/{kept.public_id}").json()
    assert (purchase["erased"], purchase["pii_available"]) == (True, False)
    assert "email" not in purchase["lead"] and purchase["consent"]["ip"] is None
    assert purchase["price"] == money_str(kept.price)


def money_str(value: Decimal) -> str:
    return f"{value:.2f}"


# --- access -----------------------------------------------------------------------------------


def test_an_access_request_exports_what_the_exchange_holds(settings, django_capture_on_commit_callbacks):
    load(buyer("acme", "30.00"))
    with django_capture_on_commit_callbacks(execute=True):
        sold = client().post("/api/v1/leads", _lead_body("cmp_seller"), format="json").json()
    with django_capture_on_commit_callbacks(execute=False):
        filed_id = (
            client()
            .post("/api/v1/privacy-requests", {"kind": "access", "phone": PHONE}, format="json")
            .json()["request_id"]
        )
    filed = PrivacyRequest.objects.get(public_id=filed_id)
    at = local(2026, 12, 8, 9, 0)
    privacy_request_process(request_id=filed.pk, now=at)
    with market_scope():
        lead = Lead.objects.get()
        sale = Sale.objects.get()
    answer = client().get(f"/api/v1/privacy-requests/{filed_id}").json()
    assert answer["status"] == "completed"

    def iso(value: dt.datetime) -> str:
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

    assert answer["result"] == {
        "export": {
            "request_id": filed_id,
            "generated_at": "2026-12-08T09:00:00Z",
            "consumer": {"email": None, "phone": PHONE_E164},
            "suppressed": False,
            "leads": [
                {
                    "lead_id": sold["lead_id"],
                    "received_at": iso(lead.created_at),
                    "seller": "Seller",
                    "offer": "Auto",
                    "data": {
                        "age": 34,
                        "email": EMAIL_NORM,
                        "first_name": "Jane",
                        "phone": PHONE_E164,
                        "state": "CA",
                        "zip": "94107",
                    },
                    "tracking": {"sub_id1": EMAIL, "sub_id2": "spring"},
                    "erased": False,
                    "consent": {
                        "text": "I agree to be contacted.",
                        "captured_at": "2026-11-22T10:00:00Z",
                        "ip": IP,
                        "user_agent": AGENT,
                        "page_url": f"https://form.example/quote?email={EMAIL}",
                        "trusted_form_cert_url": "",
                        "jornaya_leadid": "",
                    },
                    "sold_to": [{"buyer": "Acme", "sold_at": iso(sale.sold_at), "returned": False}],
                }
            ],
        }
    }


def test_an_operator_files_confirms_rejects_and_downloads_in_admin(operator_client, django_capture_on_commit_callbacks):
    load(buyer("acme"))
    page = operator_client.post(
        "/admin/leads/privacyrequest/add/", {"kind": "access", "email": EMAIL, "phone": "", "note": ""}
    )
    assert page.status_code == 302, page.content.decode()[:2000]
    filed = PrivacyRequest.objects.get()
    assert (filed.source, filed.status, filed.filed_by.email) == ("admin", "received", "op@gavel.test")
    bad = operator_client.post("/admin/leads/privacyrequest/add/", {"kind": "delete", "email": "x", "note": ""})
    assert bad.status_code == 200 and PrivacyRequest.objects.count() == 1
    listing = operator_client.get("/admin/leads/privacyrequest/").content.decode()
    assert filed.public_id in listing and "OVERDUE" not in listing
    PrivacyRequest.objects.update(confirm_due_at=timezone.now() - dt.timedelta(minutes=1))
    assert "OVERDUE" in operator_client.get("/admin/leads/privacyrequest/").content.decode()
    rejected = operator_client.post(
        "/admin/leads/privacyrequest/", {"action": "reject", "_selected_action": [filed.pk]}, follow=True
    )
    assert "Say why" in rejected.content.decode() and PrivacyRequest.objects.get().status == "received"
    with django_capture_on_commit_callbacks(execute=False):
        operator_client.post("/admin/leads/privacyrequest/", {"action": "confirm", "_selected_action": [filed.pk]})
    assert PrivacyRequest.objects.get().status == "confirmed"
    operator_client.post("/admin/leads/privacyrequest/", {"action": "process_now", "_selected_action": [filed.pk]})
    assert PrivacyRequest.objects.get().status == "completed"
    download = operator_client.get(f"/admin/leads/privacyrequest/{filed.pk}/export.json")
    assert download.status_code == 200 and json.loads(download.content)["consumer"]["email"] == EMAIL_NORM
    assert operator_client.get(f"/admin/leads/privacyrequest/{filed.pk}/change/").status_code == 200
