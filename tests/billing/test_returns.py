"""Returns: the window, the money (refund and claw-back in one balanced transaction), decisions,
the auto-approve rule, the expiry sweep, return rates, the admin and the portal form."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tenancy import market_scope
from billing.models import LedgerEntry, LedgerTransaction
from contracts.models import BuyerContract, Campaign
from core.errors import NotFound
from exchange.celery import app
from exchange.models import Sale
from exchange.returns.models import Return, ReturnPolicy
from exchange.returns.selectors import return_rate, return_rates
from exchange.returns.services import (
    ReturnAlreadyDecided,
    ReturnExists,
    ReturnNotAllowed,
    ReturnWindowClosed,
    return_decide,
    return_request,
    return_windows_close,
)
from exchange.tasks import return_windows_close_task
from tests.billing.conftest import ACME_KEY, BRAVO_KEY, money, return_post, sold
from tests.exchange.builder import SELLER2_KEY, client, events, lead_body, org
from tests.exchange.builder import run_at_once as run_all_at_once
from tests.ledger import ledger_is_consistent
from tests.sessions import member

pytestmark = pytest.mark.django_db


def returns() -> list[tuple[str, str]]:
    with market_scope():
        return list(Return.objects.order_by("pk").values_list("sale__public_id", "status"))


def the_return(public_id: str) -> Return:
    with market_scope():
        return Return.objects.select_related("sale").get(public_id=public_id)


def policy(slug: str, percent: str | None) -> ReturnPolicy:
    with market_scope():
        return ReturnPolicy.objects.create(
            organization=org(slug), auto_approve_rate_percent=None if percent is None else Decimal(percent)
        )


def sale_status(sale: Sale) -> str:
    with market_scope():
        return Sale.objects.get(pk=sale.pk).status


def age(sale: Sale, hours: float) -> None:
    """Pretend the sale was sold ``hours`` ago."""
    with market_scope():
        Sale.objects.filter(pk=sale.pk).update(sold_at=timezone.now() - timedelta(hours=hours))


# --- the money ----------------------------------------------------------------------------------


def test_an_approved_return_refunds_the_buyer_and_claws_back_the_seller_exactly(market, operator):
    start = money()
    sale = sold(1)
    assert money() == {
        "acme": start["acme"] - Decimal("30.00"),
        "seller": Decimal("24.00"),
        "platform": Decimal("6.00"),
    }

    response = return_post(sale.public_id, reason="bad_phone", note="Number disconnected.")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["reason"], body["note"], body["auto"]) == (
        "requested",
        "bad_phone",
        "Number disconnected.",
        False,
    )
    assert money()["acme"] == start["acme"] - Decimal("30.00")  # asking moves no money

    decided = return_decide(ret=the_return(body["return_id"]), approve=True, user=operator, note="Checked.")

    assert money() == {"acme": start["acme"], "seller": Decimal("0.00"), "platform": Decimal("0.00")}
    assert (decided.status, decided.decided_by, decided.decision_note) == ("approved", operator, "Checked.")
    assert sale_status(sale) == "returned"
    with market_scope():
        booked = LedgerTransaction.objects.get(idempotency_key=f"return:{body['return_id']}")
        lines = sorted(
            (e.account.organization.slug if e.account.organization else "exchange", e.account.kind, e.amount)
            for e in LedgerEntry.objects.filter(transaction=booked).select_related("account__organization")
        )
    assert booked.kind == "return"
    assert decided.ledger_transaction == booked
    assert lines == [
        ("acme", "buyer_balance", Decimal("30.00")),
        ("exchange", "platform_revenue", Decimal("-6.00")),
        ("seller", "seller_payable", Decimal("-24.00")),
    ]
    ledger_is_consistent()


def test_a_denial_changes_no_money(market, operator):
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="duplicate", note="")
    before = money()
    with market_scope():
        entries = LedgerEntry.objects.count()

    denied = return_decide(ret=ret, approve=False, user=operator, note="The phone answers.")

    assert (denied.status, denied.decision_note, denied.ledger_transaction) == ("denied", "The phone answers.", None)
    assert money() == before
    with market_scope():
        assert LedgerEntry.objects.count() == entries
    assert sale_status(sale) == "sold"
    assert events("lead.returned", "seller") == []
    assert [e["status"] for e in events("return.decided", "acme")] == ["denied"]
    ledger_is_consistent()


def test_deciding_twice_books_once_and_the_other_way_is_refused(market, operator):
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="fraud", note="")

    return_decide(ret=ret, approve=True, user=operator)
    after_first = money()
    again = return_decide(ret=ret, approve=True, user=operator)

    assert again.status == "approved"
    assert money() == after_first
    with market_scope():
        assert LedgerTransaction.objects.filter(kind="return").count() == 1
    with pytest.raises(ReturnAlreadyDecided):
        return_decide(ret=ret, approve=False, user=operator)
    assert the_return(ret.public_id).status == "approved"
    assert len(events("lead.returned", "seller")) == 1
    assert len(events("return.decided", "acme")) == 1
    ledger_is_consistent()


def test_approval_tells_the_seller_lead_returned_and_the_buyer_return_decided(market, operator):
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="wrong_person", note="Not her.")

    return_decide(ret=ret, approve=True, user=operator, note="OK")

    (returned,) = events("lead.returned", "seller")
    assert {k: returned[k] for k in ("lead_id", "sale_id", "return_id", "reason", "payout")} == {
        "lead_id": sale.lead.public_id,
        "sale_id": sale.public_id,
        "return_id": ret.public_id,
        "reason": "wrong_person",
        "payout": "24.00",
    }
    assert "note" not in returned and "buyer" not in returned  # the seller never learns who, nor the buyer's words
    (decided,) = events("return.decided", "acme")
    assert {k: decided[k] for k in ("return_id", "sale_id", "status", "refund", "auto", "decision_note")} == {
        "return_id": ret.public_id,
        "sale_id": sale.public_id,
        "status": "approved",
        "refund": "30.00",
        "auto": False,
        "decision_note": "OK",
    }
    assert events("lead.returned", "acme") == [] and events("return.decided", "seller") == []


# --- what can be returned -----------------------------------------------------------------------


def test_after_the_window_the_api_refuses_with_return_window_closed_and_creates_nothing(market):
    sale = sold(1)
    age(sale, hours=72.01)  # the contract's window is the default 72 h
    before = money()

    response = return_post(sale.public_id)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "return_window_closed"
    assert returns() == [] and money() == before and sale_status(sale) == "sold"


def test_the_window_counts_from_sold_at_to_the_second(market):
    sale = sold(1)
    deadline = sale.sold_at + timedelta(hours=72)

    with pytest.raises(ReturnWindowClosed):
        return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_email", now=deadline)
    ret = return_request(
        buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_email", now=deadline - timedelta(seconds=1)
    )
    assert ret.status == "requested"


def test_the_contracts_own_window_applies(market):
    sale = sold(1)
    with market_scope():
        BuyerContract.objects.filter(pk=sale.contract_id).update(return_window_hours=2)
    age(sale, hours=3)
    assert return_post(sale.public_id).json()["error"]["code"] == "return_window_closed"


def test_another_buyers_sale_is_not_found_and_nothing_changes(market):
    sale = sold(1)  # Acme's
    before = money()

    response = return_post(sale.public_id, key=BRAVO_KEY)
    missing = return_post("sal_doesnotexist", key=BRAVO_KEY)

    assert response.status_code == missing.status_code == 404
    assert response.json() == missing.json() == {"error": {"code": "not_found", "message": "Not found."}}
    assert returns() == [] and money() == before
    with pytest.raises(NotFound):
        return_request(buyer=org("bravo"), sale_public_id=sale.public_id, reason="bad_phone")


def test_a_test_sale_cannot_be_returned(market):
    response = client().post("/api/v1/leads", lead_body(5, test=True), format="json")
    assert response.json()["status"] == "sold"
    with market_scope():
        sale = Sale.objects.get(lead__public_id=response.json()["lead_id"])
    assert sale.test

    answer = return_post(sale.public_id)

    assert answer.status_code == 422 and answer.json()["error"]["code"] == "return_not_allowed"
    assert returns() == []


def test_a_released_sale_cannot_be_returned(market):
    sale = sold(1)
    with market_scope():  # as if delivery had been rejected: the reservation was handed back
        Sale.objects.filter(pk=sale.pk).update(status="released", release_reason="post_rejected: test")

    with pytest.raises(ReturnNotAllowed):
        return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_phone")
    assert return_post(sale.public_id).status_code == 404  # not a purchase: the API does not know it
    assert returns() == []


def test_a_second_return_of_the_same_sale_is_a_409_even_after_a_denial(market, operator):
    sale = sold(1)
    first = return_post(sale.public_id)
    assert first.status_code == 201

    again = return_post(sale.public_id, reason="fraud")
    assert again.status_code == 409 and again.json()["error"]["code"] == "return_exists"

    return_decide(ret=the_return(first.json()["return_id"]), approve=False, user=operator)
    after_denial = return_post(sale.public_id, reason="fraud")
    assert after_denial.status_code == 409 and after_denial.json()["error"]["code"] == "return_exists"
    assert returns() == [(sale.public_id, "denied")]


def test_an_approved_and_returned_sale_cannot_be_returned_again(market, operator):
    sale = sold(1)
    return_decide(
        ret=return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="fraud"),
        approve=True,
        user=operator,
    )
    before = money()
    with pytest.raises(ReturnExists):
        return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="fraud")
    assert money() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "ugly"}, "reason"),
        ({"reason": None}, "reason"),
        ({"reason": "other", "note": "  "}, "note"),
        ({"reason": "bad_phone", "note": "x" * 2001}, "note"),
        ({"reason": "bad_phone", "extra": 1}, "extra"),
    ],
)
def test_a_bad_reason_or_note_is_a_validation_error_naming_the_field(market, body, field):
    sale = sold(1)
    response = client(ACME_KEY).post(f"/api/v1/purchases/{sale.public_id}/return", body, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]
    assert returns() == []


def test_an_idempotency_key_replays_the_first_answer(market):
    sale = sold(1)
    headers = {"Idempotency-Key": "ret-1"}
    body = {"reason": "bad_phone", "note": ""}
    url = f"/api/v1/purchases/{sale.public_id}/return"

    first = client(ACME_KEY).post(url, body, format="json", headers=headers)
    second = client(ACME_KEY).post(url, body, format="json", headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert len(returns()) == 1


def test_scopes_and_roles(market):
    sale = sold(1)
    assert (
        client("gvl_test_seller_00000000000000")
        .post(f"/api/v1/purchases/{sale.public_id}/return", {"reason": "bad_phone"}, format="json")
        .status_code
        == 403
    )
    assert APIClient().post(f"/api/v1/purchases/{sale.public_id}/return", {}, format="json").status_code == 401
    assert returns() == []


# --- auto-approval ------------------------------------------------------------------------------


def test_a_ten_percent_policy_approves_up_to_the_rate_then_leaves_requests_to_the_operator(market):
    sales = [sold(n) for n in range(20)]
    policy("acme", "10")
    start = money()

    first = return_post(sales[0].public_id).json()
    second = return_post(sales[1].public_id).json()
    third = return_post(sales[2].public_id).json()

    assert (first["status"], first["auto"]) == ("approved", True)
    assert "5.00%" in first["decision_note"]
    assert (second["status"], second["auto"]) == ("approved", True)  # 2 of 20 = 10 %: at the limit
    assert (third["status"], third["auto"]) == ("requested", False)  # 3 of 20 = 15 % would exceed it
    assert money()["acme"] == start["acme"] + Decimal("60.00")
    assert [sale_status(s) for s in sales[:3]] == ["returned", "returned", "sold"]
    assert the_return(first["return_id"]).decided_by is None
    ledger_is_consistent()


def test_without_a_policy_or_with_an_empty_one_nothing_is_auto_approved(market):
    a, b = sold(1), sold(2)
    assert return_post(a.public_id).json()["status"] == "requested"
    policy("acme", None)
    assert return_post(b.public_id).json()["status"] == "requested"


def test_a_policy_of_another_buyer_does_not_apply(market):
    policy("bravo", "100")
    sale = sold(1)
    assert return_post(sale.public_id).json()["status"] == "requested"


# --- the hourly sweep ---------------------------------------------------------------------------


def test_the_sweep_denies_requests_left_undecided_for_fourteen_days_as_expired(market, operator):
    stale, fresh, decided = sold(1), sold(2), sold(3)
    now = timezone.now()
    old = return_request(buyer=org("acme"), sale_public_id=stale.public_id, reason="bad_phone")
    recent = return_request(buyer=org("acme"), sale_public_id=fresh.public_id, reason="bad_phone")
    done = return_request(buyer=org("acme"), sale_public_id=decided.public_id, reason="bad_phone")
    return_decide(ret=done, approve=True, user=operator)
    with market_scope():
        Return.objects.filter(pk__in=[old.pk, done.pk]).update(created_at=now - timedelta(days=14, seconds=1))
        Return.objects.filter(pk=recent.pk).update(created_at=now - timedelta(days=13, hours=23))
    before = money()

    closed = return_windows_close(now=now)

    assert closed == 1
    assert the_return(old.public_id).status == "denied"
    assert the_return(old.public_id).decision_note == "expired"
    assert the_return(recent.public_id).status == "requested"
    assert the_return(done.public_id).status == "approved"
    assert money() == before
    assert [e["status"] for e in events("return.decided", "acme")] == ["approved", "denied"]
    assert return_windows_close(now=now) == 0  # nothing left to close


def test_the_expiry_follows_the_setting(market, settings):
    settings.GAVEL_RETURN_EXPIRY_DAYS = 2
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_phone")
    assert return_windows_close(now=timezone.now() + timedelta(days=2, seconds=1)) == 1
    assert the_return(ret.public_id).status == "denied"


def test_the_sweep_runs_hourly_on_celery_beat(market):
    entry = app.conf.beat_schedule["exchange.return_windows_close"]
    assert entry["task"] == "exchange.return_windows_close"
    assert entry["schedule"] == 3600.0
    assert return_windows_close_task.name in app.tasks
    assert app.tasks[return_windows_close_task.name].apply().get() == 0


# --- return rates -------------------------------------------------------------------------------


def test_return_rates_per_buyer_and_per_seller_campaign_are_exact(market, operator):
    acme_seller = [sold(n) for n in range(4)]  # Acme, campaign cmp_seller
    bravo_seller = [sold(n, state="TX") for n in range(10, 12)]  # Bravo, cmp_seller
    acme_seller2 = [sold(n, key=SELLER2_KEY, campaign="cmp_seller2") for n in range(20, 22)]  # Acme, cmp_seller2
    old = sold(30)
    age(old, hours=24 * 40)  # outside a 30-day period
    client().post("/api/v1/leads", lead_body(31, test=True), format="json")  # a test sale never counts
    for sale in (acme_seller[0], acme_seller2[0]):
        return_decide(
            ret=return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_phone"),
            approve=True,
            user=operator,
        )
    # A request not (yet) approved is not a return.
    return_request(buyer=org("acme"), sale_public_id=acme_seller[1].public_id, reason="bad_phone")
    since = timezone.now() - timedelta(days=30)
    with market_scope():
        seller_campaign = Campaign.objects.get(public_id="cmp_seller")
        seller2_campaign = Campaign.objects.get(public_id="cmp_seller2")

    assert return_rate(buyer=org("acme"), since=since) == Decimal("33.33")  # 2 of 6
    assert return_rate(buyer=org("bravo"), since=since) == Decimal("0.00")  # 0 of 2
    assert return_rate(campaign=seller_campaign, since=since) == Decimal("16.67")  # 1 of 6
    assert return_rate(campaign=seller2_campaign, since=since) == Decimal("50.00")  # 1 of 2
    assert return_rate(since=since) == Decimal("25.00")  # 2 of 8
    assert return_rate(buyer=org("acme"), since=since - timedelta(days=30)) == Decimal("28.57")  # 2 of 7
    assert return_rate(buyer=org("acme"), since=timezone.now() + timedelta(days=1)) == Decimal("0.00")  # no sale
    by_buyer = {r.public_id: (r.sold, r.returned, r.rate) for r in return_rates(by="buyer", since=since)}
    assert by_buyer == {"acme": (6, 2, Decimal("33.33")), "bravo": (2, 0, Decimal("0.00"))}
    by_campaign = [(r.public_id, r.sold, r.returned, r.rate) for r in return_rates(by="campaign", since=since)]
    assert by_campaign == [("cmp_seller2", 2, 1, Decimal("50.00")), ("cmp_seller", 6, 1, Decimal("16.67"))]
    assert len(bravo_seller) == 2


# --- the operator's admin -----------------------------------------------------------------------


@pytest.fixture
def op_client(operator):
    from django.test import Client

    c = Client()
    c.force_login(operator)
    return c


def test_the_operator_approves_and_denies_from_the_list_with_a_note(market, operator, op_client):
    a, b, c = sold(1), sold(2), sold(3)
    ra = return_request(buyer=org("acme"), sale_public_id=a.public_id, reason="bad_phone")
    rb = return_request(buyer=org("acme"), sale_public_id=b.public_id, reason="fraud")
    rc = return_request(buyer=org("acme"), sale_public_id=c.public_id, reason="fraud")
    url = reverse("admin:exchange_return_changelist")

    approved = op_client.post(
        url, {"action": "approve_selected", "_selected_action": [ra.pk], "note": "Verified."}, follow=True
    )
    denied = op_client.post(url, {"action": "deny_selected", "_selected_action": [rb.pk, ra.pk], "note": "No."})

    assert approved.status_code == 200 and "1 return(s) approved." in approved.content.decode()
    assert denied.status_code == 302
    assert (the_return(ra.public_id).status, the_return(ra.public_id).decision_note) == ("approved", "Verified.")
    assert the_return(ra.public_id).decided_by == operator
    assert (the_return(rb.public_id).status, the_return(rb.public_id).decision_note) == ("denied", "No.")
    assert the_return(rc.public_id).status == "requested"
    assert sale_status(a) == "returned" and sale_status(b) == "sold"
    ledger_is_consistent()


def test_the_admin_pages_open_and_a_return_is_read_only(market, op_client):
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_phone", note="Dead line.")
    listing = op_client.get(reverse("admin:exchange_return_changelist"), {"q": sale.public_id})
    page = op_client.get(reverse("admin:exchange_return_change", args=[ret.pk]))

    assert ret.public_id in listing.content.decode()
    text = page.content.decode()
    assert page.status_code == 200 and "Dead line." in text and 'name="_save"' not in text
    assert "0.00 %" in text  # the buyer's and the campaign's 30-day rates
    change = reverse("admin:exchange_return_change", args=[ret.pk])
    assert op_client.post(change, {"status": "approved"}).status_code == 403
    assert op_client.get(reverse("admin:exchange_return_add")).status_code == 403
    for status in ("requested", "approved"):
        assert op_client.get(reverse("admin:exchange_return_changelist"), {"status__exact": status}).status_code == 200
    assert the_return(ret.public_id).status == "requested"


def test_the_operator_sets_a_return_policy_in_the_admin(market, op_client):
    response = op_client.post(
        reverse("admin:exchange_returnpolicy_add"),
        {"organization": org("acme").pk, "auto_approve_rate_percent": "7.5"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with market_scope():
        assert ReturnPolicy.objects.get(organization=org("acme")).auto_approve_rate_percent == Decimal("7.50")
    listing = op_client.get(reverse("admin:exchange_returnpolicy_changelist")).content.decode()
    assert "Acme" in listing and "0.00 %" in listing


# --- the buyer's portal -------------------------------------------------------------------------


def portal_url(sale: Sale) -> str:
    return reverse("exchange:purchase_detail", args=[sale.public_id])


def test_an_owner_returns_a_lead_from_the_purchase_page(market):
    sale = sold(1)
    owner = member("owner@acme.test", "acme", "owner")
    page = owner.get(portal_url(sale)).content.decode()
    assert "Return this lead" in page and 'value="not_interested_at_capture"' in page

    response = owner.post(portal_url(sale), {"reason": "bad_phone", "note": "Disconnected."}, follow=True)

    assert response.status_code == 200
    text = response.content.decode()
    with market_scope():
        (ret,) = Return.objects.select_related("requested_by").filter(organization=org("acme"))
    assert ret.public_id in text and "Requested" in text and "Return this lead" not in text
    assert (ret.reason, ret.note, ret.requested_by.email) == ("bad_phone", "Disconnected.", "owner@acme.test")


def test_a_manager_may_return_and_an_analyst_sees_but_gets_403(market):
    a, b = sold(1), sold(2)
    manager = member("m@acme.test", "acme", "manager")
    analyst = member("a@acme.test", "acme", "analyst")

    page = analyst.get(portal_url(a))
    assert page.status_code == 200 and "Return this lead" not in page.content.decode()
    assert analyst.post(portal_url(a), {"reason": "bad_phone"}).status_code == 403
    assert returns() == []
    assert manager.post(portal_url(b), {"reason": "bad_phone"}).status_code == 302
    assert returns() == [(b.public_id, "requested")]


def test_the_portal_shows_a_closed_window_and_refuses_a_late_post(market):
    sale = sold(1)
    age(sale, hours=100)
    owner = member("owner@acme.test", "acme", "owner")

    page = owner.get(portal_url(sale)).content.decode()
    late = owner.post(portal_url(sale), {"reason": "bad_phone"})

    assert "The return window has closed." in page and "Return this lead" not in page
    assert late.status_code == 422 and "return window" in late.content.decode()
    assert returns() == []


def test_the_portal_refuses_an_other_reason_without_a_note(market):
    sale = sold(1)
    owner = member("owner@acme.test", "acme", "owner")
    response = owner.post(portal_url(sale), {"reason": "other", "note": ""})
    assert response.status_code == 422 and "when the reason is" in response.content.decode()
    assert returns() == []


def test_an_outsider_gets_404_on_the_purchase_page_and_its_form(market):
    sale = sold(1)  # Acme's
    outsider = member("owner@bravo.test", "bravo", "owner")
    assert outsider.get(portal_url(sale)).status_code == 404
    assert outsider.post(portal_url(sale), {"reason": "bad_phone"}).status_code == 404
    assert returns() == []


# --- concurrency (real PostgreSQL connections) --------------------------------------------------

postgres_only = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="needs real concurrent connections"
)


def run_at_once(calls):
    """The shared runner, with each call's exception collected as its result (asserted by the test)."""

    def caught(call):
        def run():
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - collected, asserted by the test
                return exc

        return run

    return run_all_at_once([caught(call) for call in calls])


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_decisions_book_the_return_once(market, operator):
    sale = sold(1)
    ret = return_request(buyer=org("acme"), sale_public_id=sale.public_id, reason="bad_phone")

    results = run_at_once(
        [lambda: return_decide(ret=ret, approve=True, user=operator) for _ in range(4)]
        + [lambda: return_decide(ret=ret, approve=False, user=operator) for _ in range(2)]
    )

    status = the_return(ret.public_id).status
    with market_scope():
        assert LedgerTransaction.objects.filter(kind="return").count() == (1 if status == "approved" else 0)
    refused = [r for r in results if isinstance(r, ReturnAlreadyDecided)]
    assert len(refused) == (2 if status == "approved" else 4)
    ledger_is_consistent()


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_for_one_sale_make_one_return(market):
    sale = sold(1)
    results = run_at_once([lambda: return_post(sale.public_id).status_code for _ in range(6)])
    assert sorted(results) == [201] + [409] * 5
    assert len(returns()) == 1


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_auto_approvals_never_pass_the_policy_rate(market):
    sales = [sold(n) for n in range(20)]
    policy("acme", "10")

    run_at_once([lambda s=s: return_post(s.public_id).status_code for s in sales[:8]])

    statuses = sorted(status for _, status in returns())
    assert statuses == ["approved"] * 2 + ["requested"] * 6
    ledger_is_consistent()
