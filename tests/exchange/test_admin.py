"""The operator admin: every page opens, history is read-only, suppressions are hashed, and a
change to the market made here reaches the next ping (the contract book is invalidated)."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone

from accounts.models import Organization
from accounts.services import membership_set, user_upsert
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from contracts.forms import BuyerContractForm
from contracts.models import BuyerContract
from contracts.services import contract_hold
from core.pii import email_hash, phone_hash
from exchange.api.idempotency import IdempotencyRecord
from exchange.models import Bid, Ping, Sale
from leads.models import ConsentRecord, Lead, Suppression
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, ping, ping_body, sell
from tests.sessions import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def market() -> None:
    """Two buyers (Acme wins at 30.00, Bravo is outbid at 20.00), three leads sold, an opt-out and
    an idempotent request on record."""
    load(buyer("acme", "30.00"), buyer("bravo", "20.00"))
    for n in range(3):
        sell(n)
    response = client().post("/api/v1/ping", ping_body(9), format="json", headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 200


@pytest.fixture
def operator(operator_client: Client) -> Client:
    return operator_client


def change_url(obj: Any) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def first(model: Any) -> Any:
    with market_scope():
        return model._default_manager.order_by("pk").first()


class _FormFields(HTMLParser):
    """The fields a browser would submit from the page's change form, as (name, value) pairs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: list[tuple[str, str]] = []
        self._select: tuple[str, bool] | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "disabled" in a or not a.get("name") and tag != "option":
            return
        if tag == "input":
            kind = a.get("type", "text")
            if kind in ("submit", "button", "reset", "file", "image"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "select":
            self._select, self._options = (a["name"], "multiple" in a), []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea, self._text = a["name"], ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            name, multiple = self._select
            chosen = [v for v, selected in self._options if selected]
            if not chosen and not multiple and self._options:
                chosen = [self._options[0][0]]
            self.fields.extend((name, v) for v in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data


def form_data(html: str, **changes: str) -> dict[str, Any]:
    parser = _FormFields()
    parser.feed(html)
    data: dict[str, Any] = {}
    for name, value in parser.fields:
        data.setdefault(name, []).append(value)
    data.update({k: [v] for k, v in changes.items()})
    return data


# --- every page opens for an operator, and only for an operator ---------------------------------


def test_an_operator_opens_every_changelist_and_a_change_page_of_each_model(market, operator):
    Suppression.objects.create(consumer_hash=email_hash("out@example.com"), reason="asked")
    opened = set()
    for model in admin.site._registry:
        meta = model._meta
        response = operator.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert response.status_code == 200, meta.label
        obj = first(model)
        if obj is not None:
            assert operator.get(change_url(obj)).status_code == 200, meta.label
            opened.add(model)
    market_models = {Ping, Bid, Sale, Lead, ConsentRecord, Suppression, IdempotencyRecord}
    ledger = {LedgerAccount, LedgerTransaction, LedgerEntry, BuyerContract, Organization}
    assert market_models | ledger <= opened


def test_the_changelists_search_and_filter(market, operator):
    with market_scope():
        sale = Sale.objects.select_related("lead").first()
        ping_id = Ping.objects.order_by("pk").first().public_id
    assert ping_id in operator.get("/admin/exchange/ping/", {"q": ping_id}).content.decode()
    by_lead = operator.get("/admin/exchange/sale/", {"q": sale.lead.public_id}).content.decode()
    assert sale.public_id in by_lead
    assert operator.get("/admin/exchange/ping/", {"status": "accepted", "test__exact": "0"}).status_code == 200
    assert operator.get("/admin/exchange/sale/", {"status": "sold", "test__exact": "0"}).status_code == 200


def test_the_ping_page_renders_the_waterfall_with_every_buyer_and_the_bids(market, operator):
    with market_scope():
        ping_row = Ping.objects.filter(status="accepted").order_by("pk").first()
        contracts = {c.public_id: c for c in BuyerContract.objects.select_related("organization")}
    page = operator.get(change_url(ping_row)).content.decode()

    assert '<table class="waterfall">' in page
    for public_id, contract in contracts.items():
        assert public_id in page
        assert f'href="{change_url(contract)}"' in page
        assert contract.organization.name in page
    assert "won" in page and "outbid" in page and "30.00" in page and "20.00" in page
    with market_scope():
        for bid in Bid.objects.filter(ping=ping_row):
            assert bid.public_id in page  # the inline bids


def test_the_lead_page_shows_the_decrypted_pii_to_the_operator(market, operator):
    with market_scope():
        lead = Lead.objects.get(ping__public_id=Ping.objects.order_by("pk").first().public_id)
    page = operator.get(change_url(lead)).content.decode()

    assert "consumer0@example.com" in page and "+12015550100" in page
    assert "I agree to be contacted." in page  # the consent inline
    listing = operator.get("/admin/leads/lead/").content.decode()
    assert lead.public_id in listing and "consumer0@example.com" not in listing


def test_a_non_operator_is_sent_to_the_admin_login(market):
    user = user_upsert(email="owner@acme.test", password=PASSWORD)
    membership_set(user=user, organization=Organization.objects.get(slug="acme"), role="owner")
    c = Client()
    assert c.login(username="owner@acme.test", password=PASSWORD)
    for path in ["/admin/", "/admin/exchange/ping/", "/admin/leads/lead/", "/admin/leads/suppression/add/"]:
        response = c.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/login/"), path


# --- history is read-only ------------------------------------------------------------------------


def snapshot() -> dict[str, list[Any]]:
    with market_scope():
        return {
            "pings": list(Ping.objects.order_by("pk").values_list("pk", "status", "payout", "waterfall")),
            "bids": list(Bid.objects.order_by("pk").values_list("pk", "price", "status")),
            "sales": list(Sale.objects.order_by("pk").values_list("pk", "price", "payout", "status")),
            "leads": list(Lead.objects.order_by("pk").values_list("pk", "status", "payout", "data")),
            "consents": list(ConsentRecord.objects.order_by("pk").values_list("pk", "text")),
            "entries": list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount")),
            "accounts": list(LedgerAccount.objects.order_by("pk").values_list("pk", "balance", "held")),
            "transactions": list(LedgerTransaction.objects.order_by("pk").values_list("pk", "kind")),
            "idempotency": list(IdempotencyRecord.objects.order_by("pk").values_list("pk", "state")),
        }


@pytest.mark.parametrize(
    "model",
    [Ping, Bid, Sale, Lead, ConsentRecord, LedgerAccount, LedgerTransaction, LedgerEntry, IdempotencyRecord],
)
def test_history_refuses_change_delete_and_add(market, operator, model):
    obj = first(model)
    before = snapshot()
    meta = model._meta
    page = operator.get(change_url(obj)).content.decode()

    assert 'name="_save"' not in page  # shown, not editable
    assert operator.post(change_url(obj), form_data(page, status="sold", price="0.01")).status_code == 403
    delete = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[obj.pk])
    assert operator.post(delete, {"post": "yes"}).status_code == 403
    assert operator.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 403
    bulk = operator.post(
        reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302, 403)
    assert snapshot() == before


# --- suppressions: typed in clear, stored hashed ------------------------------------------------


def database_text() -> str:
    """Everything in the database, as text: every model's rows and the decoded sessions."""
    out = io.StringIO()
    with market_scope():
        call_command("dumpdata", "--all", stdout=out)
    sessions = "".join(str(s.get_decoded()) for s in Session.objects.all())
    return out.getvalue() + sessions


def test_an_operator_suppresses_an_email_and_only_its_hash_is_stored(market, operator):
    response = operator.post(
        "/admin/leads/suppression/add/",
        {"consumer": "  Jane.Doe@Example.COM ", "reason": "asked by phone"},
        follow=True,
    )

    assert response.status_code == 200
    suppression = Suppression.objects.get()
    assert suppression.consumer_hash == email_hash("jane.doe@example.com")
    assert suppression.reason == "asked by phone"
    everything = database_text().lower()
    assert "jane.doe@example.com" not in everything and "jane.doe" not in everything
    listing = operator.get("/admin/leads/suppression/").content.decode()
    assert suppression.consumer_hash[:16] in listing and "asked by phone" in listing


def test_a_suppressed_email_is_refused_at_the_next_ping(market, operator):
    operator.post("/admin/leads/suppression/add/", {"consumer": "consumer7@example.com", "reason": "opt-out"})

    answer = ping(7)

    assert (answer["status"], answer["reason"]) == ("rejected", "suppressed")


def test_a_phone_is_normalized_before_it_is_hashed(market, operator):
    operator.post("/admin/leads/suppression/add/", {"consumer": "(201) 555-0123", "reason": ""})
    assert Suppression.objects.get().consumer_hash == phone_hash("+12015550123")


def test_a_repeat_or_an_invalid_value_adds_nothing(market, operator):
    operator.post("/admin/leads/suppression/add/", {"consumer": "a@example.com", "reason": "first"})
    repeat = operator.post(
        "/admin/leads/suppression/add/", {"consumer": "A@example.com ", "reason": "second"}, follow=True
    )
    invalid = operator.post("/admin/leads/suppression/add/", {"consumer": "not a phone", "reason": "x"})

    assert "already suppressed" in repeat.content.decode()
    assert invalid.status_code == 200 and "Not a usable email or phone number" in invalid.content.decode()
    assert list(Suppression.objects.values_list("consumer_hash", "reason")) == [(email_hash("a@example.com"), "first")]


def test_a_suppression_cannot_be_edited(market, operator):
    operator.post("/admin/leads/suppression/add/", {"consumer": "a@example.com", "reason": "first"})
    suppression = Suppression.objects.get()
    response = operator.post(change_url(suppression), {"reason": "changed"})
    assert response.status_code == 403
    assert Suppression.objects.get().reason == "first"


# --- the contract book follows changes made in the admin ----------------------------------------


def test_a_contract_price_changed_in_the_admin_changes_the_next_ping(market, operator):
    assert ping(20)["payout"] == "24.00"  # Acme's 30.00 less the 20% margin; the book is built
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme")
    page = operator.get(change_url(contract)).content.decode()

    response = operator.post(change_url(contract), form_data(page, price="42.50"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert ping(21)["payout"] == "34.00"


def test_an_inline_contract_change_on_the_organization_page_changes_the_next_ping(market, operator):
    assert ping(20)["payout"] == "24.00"
    acme = Organization.objects.get(slug="acme")
    page = operator.get(change_url(acme)).content.decode()
    data = form_data(page)
    price_fields = [k for k in data if k.startswith("contracts-") and k.endswith("-price") and "__prefix__" not in k]
    assert len(price_fields) == 1

    response = operator.post(change_url(acme), {**data, price_fields[0]: ["12.00"]})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert ping(21)["payout"] == "16.00"  # Bravo's 20.00 now wins


# --- the admin writes only what the operator changed; holds are the exchange's ----------------------

BREAKER_REASON = "Circuit breaker: 5 RTB failures in a row (last: rtb_timeout)"


def breaker_held(public_id: str) -> tuple[BuyerContract, datetime]:
    """The contract as the circuit breaker leaves it when it trips."""
    retry_at = timezone.now() + timedelta(seconds=60)
    with market_scope():
        contract = BuyerContract.objects.get(public_id=public_id)
        assert contract_hold(contract_id=contract.pk, hold="breaker", reason=BREAKER_REASON, retry_at=retry_at)
        return BuyerContract.objects.get(public_id=public_id), retry_at


def hold_state(public_id: str) -> tuple[str, str | None, str, datetime | None, int]:
    with market_scope():
        c = BuyerContract.objects.get(public_id=public_id)
    return c.status, c.hold, c.hold_reason, c.breaker_retry_at, c.breaker_trips


def test_releasing_the_hold_on_the_contract_page_takes_the_contract_out_of_the_breaker(market, operator):
    contract, retry_at = breaker_held("ctr_acme")
    page = operator.get(change_url(contract)).content.decode()
    assert f'<div class="readonly">{formats.localize(retry_at)}</div>' in page  # shown, read-only
    assert 'name="breaker_retry_at"' not in page and 'name="breaker_trips"' not in page

    response = operator.post(change_url(contract), form_data(page, hold=""))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("active", None, "", None, 0)
    assert ping(20)["payout"] == "24.00"  # Acme buys again


def test_an_operators_hold_on_the_contract_page_is_never_retried(market, operator):
    contract, _ = breaker_held("ctr_acme")
    page = operator.get(change_url(contract)).content.decode()

    response = operator.post(change_url(contract), form_data(page, hold="operator", hold_reason="Invoice due"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("active", "operator", "Invoice due", None, 0)


def test_the_operator_cannot_set_the_breakers_hold(market, operator):
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme")
    page = operator.get(change_url(contract)).content.decode()

    response = operator.post(change_url(contract), form_data(page, hold="breaker", price="42.50"))

    assert response.status_code == 200  # the form again, with the error
    assert "Only the circuit breaker holds a contract as the breaker." in response.content.decode()
    assert hold_state("ctr_acme") == ("active", None, "", None, 0)
    with market_scope():
        assert BuyerContract.objects.get(public_id="ctr_acme").price == Decimal("30.00")


def test_a_price_changed_on_the_contract_page_leaves_the_breaker_in_charge(market, operator):
    contract, retry_at = breaker_held("ctr_acme")
    page = operator.get(change_url(contract)).content.decode()

    response = operator.post(change_url(contract), form_data(page, price="42.50"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("active", "breaker", BREAKER_REASON, retry_at, 1)


def test_changes_made_elsewhere_while_the_contract_page_was_open_are_kept(market, operator):
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme")
    page = operator.get(change_url(contract)).content.decode()  # no hold, active, 100 a day
    _, retry_at = breaker_held("ctr_acme")  # the breaker trips before the operator saves
    response = client(f"{BUYER_KEY_PREFIX}acme_000000").patch(
        "/api/v1/contracts/ctr_acme", {"status": "paused", "caps": {"day": 7}}, format="json"
    )
    assert response.status_code == 200, response.content  # and the buyer changes its own terms

    response = operator.post(change_url(contract), form_data(page, price="42.50"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("paused", "breaker", BREAKER_REASON, retry_at, 1)
    with market_scope():
        saved = BuyerContract.objects.get(public_id="ctr_acme")
    assert (saved.price, saved.cap_day) == (Decimal("42.50"), 7)


def test_a_hold_set_on_a_page_opened_before_the_breaker_tripped_is_the_operators(market, operator):
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme")
    page = operator.get(change_url(contract)).content.decode()
    breaker_held("ctr_acme")

    response = operator.post(change_url(contract), form_data(page, hold="operator", hold_reason="Audit"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("active", "operator", "Audit", None, 0)  # never retried


def test_a_hold_by_the_breaker_while_the_organization_page_was_open_is_kept(market, operator):
    acme = Organization.objects.get(slug="acme")
    data = form_data(operator.get(change_url(acme)).content.decode())
    price_fields = [k for k in data if k.startswith("contracts-") and k.endswith("-price") and "__prefix__" not in k]
    _, retry_at = breaker_held("ctr_acme")

    response = operator.post(change_url(acme), {**data, price_fields[0]: ["12.00"]})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("active", "breaker", BREAKER_REASON, retry_at, 1)
    with market_scope():
        assert BuyerContract.objects.get(public_id="ctr_acme").price == Decimal("12.00")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs concurrent connections"
)
def test_a_hold_by_the_breaker_during_a_save_on_the_contract_page_is_kept(market, operator, monkeypatch):
    with market_scope():
        contract = BuyerContract.objects.get(public_id="ctr_acme")
    page = operator.get(change_url(contract)).content.decode()
    clean = BuyerContractForm.clean

    def hold_elsewhere() -> None:
        try:
            with market_scope():
                contract_hold(contract_id=contract.pk, hold="breaker", reason=BREAKER_REASON, retry_at=timezone.now())
        finally:
            connections.close_all()

    def clean_while_the_breaker_holds(form: BuyerContractForm) -> dict[str, Any]:
        # The save has read the contract (no hold); the breaker holds it from another connection.
        thread = threading.Thread(target=hold_elsewhere)
        thread.start()
        thread.join(10)
        return clean(form)

    monkeypatch.setattr(BuyerContractForm, "clean", clean_while_the_breaker_holds)

    response = operator.post(change_url(contract), form_data(page, price="42.50"))

    assert response.status_code == 302, response.content.decode()[:2000]
    status, hold, reason, retry_at, trips = hold_state("ctr_acme")
    assert (status, hold, reason, trips) == ("active", "breaker", BREAKER_REASON, 1) and retry_at is not None
    with market_scope():
        assert BuyerContract.objects.get(public_id="ctr_acme").price == Decimal("42.50")


def test_a_hold_lifted_in_the_organization_pages_inline_takes_the_contract_out_of_the_breaker(market, operator):
    breaker_held("ctr_acme")
    acme = Organization.objects.get(slug="acme")
    data = form_data(operator.get(change_url(acme)).content.decode())
    hold_fields = [k for k in data if k.startswith("contracts-") and k.endswith("-hold") and "__prefix__" not in k]
    assert len(hold_fields) == 1 and data[hold_fields[0]] == ["breaker"]

    response = operator.post(change_url(acme), {**data, hold_fields[0]: [""]})

    assert response.status_code == 302, response.content.decode()[:2000]
    assert hold_state("ctr_acme") == ("active", None, "", None, 0)


def test_pausing_an_organization_in_the_admin_takes_its_contracts_out(market, operator):
    assert ping(20)["payout"] == "24.00"
    acme = Organization.objects.get(slug="acme")
    page = operator.get(change_url(acme)).content.decode()

    response = operator.post(change_url(acme), form_data(page, status="suspended"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert ping(21)["payout"] == "16.00"


def test_bid_ranks_count_from_one_as_in_the_buyers_portal(market, operator):
    with market_scope():
        winner = Bid.objects.filter(status="won").order_by("pk").first()
    assert winner.rank == 0
    listing = operator.get(reverse("admin:exchange_bid_changelist")).content.decode()
    assert '<td class="field-place">1</td>' in listing and '<td class="field-place">2</td>' in listing
    page = operator.get(change_url(winner)).content.decode()
    assert "<label>Rank:</label>" in page and '<div class="readonly">1</div>' in page


def test_the_blocked_organization_choosers_list_only_that_side(market, operator):
    from contracts.models import Campaign

    with market_scope():
        contract = BuyerContract.objects.order_by("pk").first()
        campaign = Campaign.objects.order_by("pk").first()
        sellers = set(Organization.objects.filter(is_seller=True).values_list("pk", flat=True))
        buyers = set(Organization.objects.filter(is_buyer=True).values_list("pk", flat=True))
    assert sellers != buyers
    for obj, field, expected in ((contract, "blocked_sellers", sellers), (campaign, "blocked_buyers", buyers)):
        response = operator.get(change_url(obj))
        choices = {o.pk for o in response.context["adminform"].form.fields[field].queryset}
        assert choices == expected, field


def test_the_ping_page_counts_the_contracts_the_index_left_out(operator):
    load(
        buyer("acme", "30.00"),
        buyer("texan", "40.00", filters={"field": "state", "op": "eq", "value": "TX"}),
        buyer("nevadan", "40.00", filters={"field": "state", "op": "in", "value": ["NV", "TX"]}),
    )
    answer = client().post("/api/v1/ping", ping_body(1), format="json").json()  # a Californian lead
    with market_scope():
        ping_row = Ping.objects.get(public_id=answer["ping_id"])
    page = operator.get(change_url(ping_row)).content.decode()

    assert "ctr_acme" in page and "ctr_texan" not in page and "ctr_nevadan" not in page
    assert "<td>2 other contracts (not looked at)</td><td>—</td><td>filtered:state</td>" in page
