"""The buyer's contract editor: create and edit a contract with the builder, refusals shown by the
field with nothing saved and nothing typed lost, who may do what, pause and resume, and the
contract page's *Send test lead*."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.tenancy import market_scope
from contracts.models import BuyerContract
from contracts.services import contract_update
from exchange.models import Sale
from tests.exchange.receiver import Receiver
from tests.sessions import login, member

NEW = "/portal/contracts/new/"
WEST = "ctr_acme_west"
WEEKDAYS_9_TO_5 = [f"{day}:{hour}" for day in ("mon", "tue", "wed", "thu", "fri") for hour in range(9, 17)]


def form(**overrides):
    """What the editor posts for a plain fixed-price contract; ``overrides`` change or add fields."""
    data = {
        "offer": "auto-insurance",
        "name": "East coast",
        "pricing": "fixed",
        "price": "25.00",
        "rtb_url": "",
        "max_price": "",
        "rtb_timeout_ms": "300",
        "filters-kind": "all",
        "blocked_sources": "",
        "min_score": "0",
        "dedup_days": "30",
        "schedule_mode": "always",
        "cap_day": "",
        "cap_week": "",
        "cap_month": "",
        "cap_total": "",
        "budget_day": "",
        "budget_week": "",
        "budget_month": "",
        "budget_total": "",
        "delivery_method": "none",
        "delivery_url": "",
        "delivery_timeout_ms": "5000",
        "headers": "",
        "accept_kind": "any",
        "accept_path": "",
        "accept_equals": "",
        "accept_regex": "",
        "reason_path": "",
        "return_window_hours": "72",
    }
    data.update(overrides)
    return data


def leaf(nid, parent, field, op, **values):
    row = {f"{nid}-parent": parent, f"{nid}-kind": "leaf", f"{nid}-field": field, f"{nid}-op": op}
    row.update({f"{nid}-{key}": value for key, value in values.items()})
    return row


def page_of(response) -> str:
    return html.unescape(response.content.decode())


def error_after(page: str, marker: str, message: str) -> None:
    """``message`` is shown as a field error right after ``marker`` (the field's input)."""
    start = page.index(marker)
    following = page[start:]
    errors = re.findall(r'<p class="field-error">(.*?)</p>', following, re.S)
    assert errors and message in errors[0], (message, errors[:1])


def acme_contracts() -> list[str]:
    with market_scope():
        return sorted(BuyerContract.objects.filter(organization__slug="acme").values_list("name", flat=True))


@pytest.fixture
def owner(market):
    return login("owner@acme.test")


def test_a_buyer_creates_a_contract_with_the_builder(owner):
    data = form(
        node=["n1", "g1", "n2", "n3", "n4"],
        mod=["m1"],
        **{"m1-action": "add", "m1-amount": "5.00", "m1-kind": "all", "g1-parent": "filters", "g1-kind": "any"},
        **leaf("n1", "filters", "state", "in", values=["CA", "TX"]),
        **leaf("n2", "g1", "age", "between", low="25", high="60"),
        **leaf("n3", "g1", "zip", "prefix", value="9"),
        **leaf("n4", "m1", "state", "in", values=["TX"]),
        schedule_mode="grid",
        cell=WEEKDAYS_9_TO_5,
        cap_day="10",
        budget_day="300.00",
        min_score="40",
    )
    response = owner.post(NEW, data)
    assert response.status_code == 302, page_of(response)[:3000]
    with market_scope():
        contract = BuyerContract.objects.get(organization__slug="acme", name="East coast")
    assert response["Location"] == f"/portal/contracts/{contract.public_id}/"
    assert contract.price == Decimal("25.00") and contract.status == "active"
    assert contract.filters == {
        "all": [
            {"field": "state", "op": "in", "value": ["CA", "TX"]},
            {
                "any": [
                    {"field": "age", "op": "between", "value": ["25", "60"]},
                    {"field": "zip", "op": "prefix", "value": "9"},
                ]
            },
        ]
    }
    assert contract.modifiers == [{"when": {"field": "state", "op": "in", "value": ["TX"]}, "add": "5.00"}]
    assert contract.schedule == {"windows": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}
    assert (contract.cap_day, contract.budget_day, contract.min_score) == (10, Decimal("300.00"), 40)

    page = page_of(owner.get(response["Location"]))
    assert "State is one of CA, TX and (Age is between 25 and 60 or Zip starts with 9)" in page
    assert "When State is one of TX: add $5.00" in page
    assert "Mon–Fri 9:00–17:00 (America/New_York)" in page
    assert "Today: 0 of 10 leads, $0.00 of $300.00" in page
    assert '"field"' not in page  # no JSON on the page


def test_a_pasted_and_an_uploaded_zip_list_make_one_filter(owner):
    upload = SimpleUploadedFile("zips.csv", b"10001\n10002,10003\n")
    data = form(node=["n1"], **leaf("n1", "filters", "zip", "in", list="94107, 94108"))
    data["n1-file"] = upload
    assert owner.post(NEW, data).status_code == 302
    with market_scope():
        contract = BuyerContract.objects.get(name="East coast")
    assert contract.filters == {"field": "zip", "op": "in", "value": ["94107", "94108", "10001", "10002", "10003"]}


def test_the_edit_page_shows_the_terms_as_rows_and_saves_a_change(owner):
    page = page_of(owner.get(f"/portal/contracts/{WEST}/edit/"))
    for state in ("CA", "OR", "WA"):
        assert f'value="{state}" checked' in page
    assert 'name="cap_day" value="100"' in page
    data = form(
        name="Acme West",
        price="31.50",
        cap_day="100",
        node=["n1"],
        **leaf("n1", "filters", "state", "in", values=["CA", "OR"]),
    )
    response = owner.post(f"/portal/contracts/{WEST}/edit/", data)
    assert response.status_code == 302
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
    assert (contract.name, contract.price, contract.cap_day) == ("Acme West", Decimal("31.50"), 100)
    assert contract.filters == {"field": "state", "op": "in", "value": ["CA", "OR"]}


BAD_INPUTS = [
    # (what the buyer typed, the input it is shown after, the message, a typed value kept on the page)
    ({"price": "abc"}, 'name="price"', "A valid number is required.", 'value="abc"'),
    ({"price": "20000.00"}, 'name="price"', "Above the offer's max bid of 10000.00.", 'value="20000.00"'),
    ({"price": ""}, 'name="price"', "Enter a price.", 'name="name" value="East coast"'),
    ({"name": ""}, 'name="name"', "This field may not be blank.", 'value="25.00"'),
    ({"cap_day": "-3"}, 'name="cap_day"', "Enter a whole number of leads", 'value="-3"'),
    ({"budget_week": "12.345"}, 'name="budget_week"', "at most 2 decimals", 'value="12.345"'),
    ({"min_score": "150"}, 'name="min_score"', "less than or equal to 100", 'value="150"'),
    ({"schedule_mode": "grid"}, 'name="cell"', "Pick at least one hour", 'value="grid" checked'),
    (
        {"delivery_method": "webhook", "delivery_url": "ftp://example.com/x"},
        'name="delivery_url"',
        "a webhook delivery needs an http(s) URL",
        'value="ftp://example.com/x"',
    ),
    (
        {"delivery_method": "webhook", "delivery_url": "https://example.com/x", "headers": "no colon here"},
        'name="headers"',
        "Line 1: write each header as Name: value.",
        "no colon here",
    ),
    (
        {"node": ["n1"], **leaf("n1", "filters", "age", "between", low="30", high="x")},
        'name="n1-field"',
        "Expected an integer, got 'x'",
        'name="n1-high" value="x"',
    ),
    (
        {"node": ["n1"], **leaf("n1", "filters", "age", "between", low="60", high="30")},
        'name="n1-field"',
        "Expected low <= high",
        'name="n1-low" value="60"',
    ),
    (
        {"node": ["n1"], **leaf("n1", "filters", "state", "in")},
        'name="n1-field"',
        "Pick or enter at least one value.",
        'name="n1-op"',
    ),
    (
        {"mod": ["m1"], "m1-action": "add", "m1-amount": "1.234", "m1-kind": "all"},
        'name="m1-amount"',
        "at most 2 decimals",
        'value="1.234"',
    ),
    (
        {"mod": ["m1"], "m1-action": "multiply", "m1-amount": "2", "m1-kind": "all", "price": "6000.00"},
        'name="m1-amount"',
        "above the offer's max bid of 10000.00",
        'value="6000.00"',
    ),
]


@pytest.mark.parametrize(("typed", "field", "message", "kept"), BAD_INPUTS)
def test_a_refusal_is_shown_by_its_field_with_nothing_saved_and_nothing_lost(owner, typed, field, message, kept):
    data = form(
        node=["n9", *typed.pop("node", [])],
        **leaf("n9", "filters", "state", "in", values=["NY", "NJ"]),
        cell=["sat:10"] if "schedule_mode" not in typed else [],
        **typed,
    )
    before = acme_contracts()
    response = owner.post(NEW, data)
    assert response.status_code == 422
    page = page_of(response)
    assert "Nothing was saved" in page
    error_after(page, field, message)
    assert kept in page
    # The builder's other rows come back as typed.
    assert 'value="NY" checked' in page and 'value="NJ" checked' in page
    assert acme_contracts() == before


def test_a_refused_edit_changes_nothing(owner):
    response = owner.post(f"/portal/contracts/{WEST}/edit/", form(name="Renamed", price="abc"))
    assert response.status_code == 422
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
    assert contract.price == Decimal("30.00") and contract.name != "Renamed"
    page = page_of(response)
    assert 'name="name" value="Renamed"' in page and 'value="abc"' in page


def test_an_analyst_reads_the_contract_but_cannot_change_it(market):
    analyst = member("analyst@acme.test", "acme", "analyst")
    page = page_of(analyst.get(f"/portal/contracts/{WEST}/"))
    assert "State is one of CA, OR, WA" in page
    assert "/edit/" not in page and "Pause" not in page and "Send test lead" not in page
    for response in (
        analyst.get(NEW),
        analyst.get(f"/portal/contracts/{WEST}/edit/"),
        analyst.post(f"/portal/contracts/{WEST}/edit/", form(price="1.00")),
        analyst.post(f"/portal/contracts/{WEST}/status/", {"action": "pause"}),
        analyst.post(f"/portal/contracts/{WEST}/test-delivery/"),
    ):
        assert response.status_code == 403
        assert "needs the <strong>manager</strong> role" in response.content.decode()
    with market_scope():
        assert BuyerContract.objects.get(public_id=WEST).status == "active"


def test_another_organizations_contract_is_not_found(market):
    outsider = login("charlie@charlie.test")
    for response in (
        outsider.get(f"/portal/contracts/{WEST}/"),
        outsider.get(f"/portal/contracts/{WEST}/edit/"),
        outsider.post(f"/portal/contracts/{WEST}/edit/", form(price="1.00")),
        outsider.post(f"/portal/contracts/{WEST}/status/", {"action": "pause"}),
        outsider.post(f"/portal/contracts/{WEST}/test-delivery/"),
    ):
        assert response.status_code == 404
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
    assert (contract.status, contract.price) == ("active", Decimal("30.00"))


def test_a_manager_pauses_and_resumes_in_one_click(market):
    manager = member("manager@acme.test", "acme", "manager")
    response = manager.post(f"/portal/contracts/{WEST}/status/", {"action": "pause"}, follow=True)
    with market_scope():
        assert BuyerContract.objects.get(public_id=WEST).status == "paused"
    page = page_of(response)
    assert "Paused: the contract no longer bids." in page and 'value="resume"' in page
    response = manager.post(f"/portal/contracts/{WEST}/status/", {"action": "resume"}, follow=True)
    with market_scope():
        assert BuyerContract.objects.get(public_id=WEST).status == "active"
    assert "Resumed: the contract bids" in page_of(response)


def test_a_held_contract_shows_its_hold_and_the_buyer_cannot_lift_it(owner):
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
        contract_update(contract=contract, terms={"status": "paused"})
        contract_update(
            contract=contract, terms={"hold": "operator", "hold_reason": "Too many rejected deliveries"}, operator=True
        )
    response = owner.post(f"/portal/contracts/{WEST}/status/", {"action": "resume", "hold": ""}, follow=True)
    page = page_of(response)
    assert "the exchange holds this contract: it does not bid until the exchange lifts the hold" in page
    assert "Held by the exchange's operator: Too many rejected deliveries." in page
    # Saving the editor does not lift it either.
    owner.post(f"/portal/contracts/{WEST}/edit/", form(name="acme-west", price="30.00", hold="", hold_reason=""))
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
    assert (contract.status, contract.hold, contract.hold_reason) == (
        "active",
        "operator",
        "Too many rejected deliveries",
    )


@pytest.fixture
def buyer_server():
    server = Receiver().start()
    yield server
    server.stop()


def _deliver_to(url: str, **delivery) -> None:
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
        contract_update(contract=contract, terms={"delivery": {"method": "webhook", "url": url, **delivery}})


def test_send_test_lead_shows_the_request_and_the_accepted_answer(owner, buyer_server):
    _deliver_to(buyer_server.url, accept={"path": "status", "equals": "accepted"}, headers={"X-Api-Key": "k1"})
    buyer_server.answer(200, body=b'{"status": "accepted", "id": "crm-1"}')
    detail = page_of(owner.get(f"/portal/contracts/{WEST}/"))
    assert "Send test lead" in detail and 'hx-post="/portal/contracts/ctr_acme_west/test-delivery/"' in detail

    response = owner.post(f"/portal/contracts/{WEST}/test-delivery/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = page_of(response)
    assert "<html" not in page  # the fragment htmx puts on the page
    assert "Accepted" in page and "HTTP 200" in page and '{"status": "accepted", "id": "crm-1"}' in page
    assert f"POST {buyer_server.url}" in page
    assert "x-api-key: k1" in page.lower() and "webhook-signature: v1," in page
    [received] = buyer_server.requests
    body = json.loads(received.body)
    assert body["test"] is True and body["offer"] == "auto-insurance" and body["price"] == "30.00"
    assert body["lead"]["state"] == "CA" and body["lead"]["zip"] == "94107" and 18 <= body["lead"]["age"] <= 120
    assert received.headers["x-api-key"] == "k1"
    assert '"lead_id": "' + body["lead_id"] + '"' in page
    with market_scope():
        assert not Sale.objects.exists()


def test_send_test_lead_says_why_the_buyer_rejected_it(owner, buyer_server):
    _deliver_to(buyer_server.url, accept={"path": "status", "equals": "accepted"}, reason_path="error")
    buyer_server.answer(200, body=b'{"status": "rejected", "error": "Duplicate lead"}')
    page = page_of(owner.post(f"/portal/contracts/{WEST}/test-delivery/"))
    assert "Not accepted" in page and "Your server rejected it: Duplicate lead" in page
    assert "<html" in page  # without htmx, a whole page

    buyer_server.answer(503, body=b"down")
    page = page_of(owner.post(f"/portal/contracts/{WEST}/test-delivery/", HTTP_HX_REQUEST="true"))
    assert "Your server answered HTTP 503, not 2xx." in page and "down" in page


def test_send_test_lead_without_a_delivery_url_says_so(owner):
    page = page_of(owner.post(f"/portal/contracts/{WEST}/test-delivery/", HTTP_HX_REQUEST="true"))
    assert "This contract has no delivery URL" in page


def test_a_buyer_creates_a_real_time_bidding_contract(owner):
    data = form(
        pricing="rtb", price="", rtb_url="https://bids.example.com/gavel", max_price="40.00", rtb_timeout_ms="250"
    )
    response = owner.post(NEW, data)
    assert response.status_code == 302, page_of(response)[:2000]
    with market_scope():
        contract = BuyerContract.objects.get(name="East coast")
    assert (contract.price, contract.rtb_url, contract.max_price, contract.rtb_timeout_ms) == (
        None,
        "https://bids.example.com/gavel",
        Decimal("40.00"),
        250,
    )
    page = page_of(owner.get(response["Location"]))
    assert "Real-time bid from https://bids.example.com/gavel (timeout 250 ms)" in page


def test_a_webhook_delivery_is_saved_with_its_headers_and_accept_rule(owner):
    data = form(
        delivery_method="webhook",
        delivery_url="https://crm.example.com/leads",
        headers="Authorization: Bearer abc\nX-Source: gavel",
        accept_kind="json",
        accept_path="result.ok",
        accept_equals="true",
        reason_path="error",
    )
    assert owner.post(NEW, data).status_code == 302
    with market_scope():
        contract = BuyerContract.objects.get(name="East coast")
    assert contract.delivery == {
        "method": "webhook",
        "url": "https://crm.example.com/leads",
        "timeout_ms": 5000,
        "headers": {"Authorization": "Bearer abc", "X-Source": "gavel"},
        "accept": {"path": "result.ok", "equals": True},
        "reason_path": "error",
    }
    page = page_of(owner.get(f"/portal/contracts/{contract.public_id}/edit/"))
    assert 'name="accept_equals" value="true"' in page
    headers = re.search(r'name="headers"[^>]*>(.*?)</textarea>', page, re.S)[1]
    assert sorted(headers.splitlines()) == ["Authorization: Bearer abc", "X-Source: gavel"]


def test_a_filter_the_builder_cannot_show_is_edited_as_json_and_kept(owner):
    rule = {"not": {"any": [{"field": "state", "op": "eq", "value": "CA"}, {"field": "age", "op": "lt", "value": 21}]}}
    with market_scope():
        contract = BuyerContract.objects.get(public_id=WEST)
        contract_update(contract=contract, terms={"filters": rule})
    page = page_of(owner.get(f"/portal/contracts/{WEST}/edit/"))
    assert 'name="filters_json"' in page
    response = owner.post(
        f"/portal/contracts/{WEST}/edit/", form(name="acme-west", price="30.00", filters_json=json.dumps(rule))
    )
    assert response.status_code == 302
    with market_scope():
        assert BuyerContract.objects.get(public_id=WEST).filters == rule
    assert "not (State is CA or Age is less than 21)" in page_of(owner.get(f"/portal/contracts/{WEST}/"))


def test_the_new_page_with_an_unknown_offer_is_not_found(owner):
    assert owner.get(NEW + "?offer=no-such-offer").status_code == 404


def test_blocked_sources_hours_and_weekdays_are_rows_of_the_filter(owner):
    data = form(
        node=["n1", "n2"],
        **leaf("n1", "filters", "$weekday", "in", values=["sat", "sun"]),
        **leaf("n2", "filters", "$hour", "between", low="9", high="17"),
        blocked_sources="src_aaaa\nsrc_bbbb",
    )
    response = owner.post(NEW, data)
    assert response.status_code == 302, page_of(response)[:2000]
    with market_scope():
        contract = BuyerContract.objects.get(name="East coast")
    assert contract.filters == {
        "all": [
            {"field": "$weekday", "op": "in", "value": ["sat", "sun"]},
            {"field": "$hour", "op": "between", "value": ["9", "17"]},
            {"field": "$source", "op": "not_in", "value": ["src_aaaa", "src_bbbb"]},
        ]
    }
    page = page_of(owner.get(f"/portal/contracts/{contract.public_id}/edit/"))
    assert "src_aaaa\nsrc_bbbb</textarea>" in page


def test_pausing_a_contract_whose_saved_terms_no_longer_fit_the_offer_says_so(owner):
    with market_scope():  # the offer's fields changed under the contract: no service writes this
        BuyerContract.objects.filter(public_id=WEST).update(filters={"field": "gone", "op": "eq", "value": "x"})
    response = owner.post(f"/portal/contracts/{WEST}/status/", {"action": "pause"}, follow=True)
    assert response.status_code == 200
    page = page_of(response)
    assert "Nothing changed: this contract's saved terms no longer fit the offer" in page
    assert "unknown field 'gone'" in page
    with market_scope():
        assert BuyerContract.objects.get(public_id=WEST).status == "active"
    # The editor shows the saved terms it cannot read as rows as JSON, ready to be fixed.
    assert 'name="filters_json"' in page_of(owner.get(f"/portal/contracts/{WEST}/edit/"))


def test_a_post_nesting_groups_past_what_the_page_makes_is_refused_not_a_crash(owner):
    ids = [f"g{i}" for i in range(300)]  # within Django's limit on posted fields
    data = form(node=[*ids, "n1"], **leaf("n1", ids[-1], "state", "in", values=["CA"]))
    for i, gid in enumerate(ids):
        data.update({f"{gid}-parent": "filters" if i == 0 else ids[i - 1], f"{gid}-kind": "all"})
    before = acme_contracts()
    response = owner.post(NEW, data)
    assert response.status_code == 422
    assert "Groups nest at most 8 levels deep." in page_of(response)
    assert acme_contracts() == before
