"""The audit trail: every write path of each audited thing leaves an entry saying who, when and
what changed (before and after); operators' views of decrypted PII are recorded; each
organization reads its own trail; consumer PII never appears in an entry."""

from __future__ import annotations

import datetime as dt
import html
import json
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from accounts.models import ApiKey, AuditEntry, Organization
from accounts.services import api_key_scopes_set, organization_status_set
from accounts.tenancy import market_scope
from billing.services import credit_limit_set, payout_record, topup_record
from contracts.models import BuyerContract, Campaign
from contracts.services import contract_breaker_resume, contract_hold
from core.audit import audit_mask
from exchange.models import Offer
from leads.models import Lead, Suppression
from tests.conftest import ACME_KEY, LEADGEN_KEY, api_client
from tests.exchange.builder import lead_body, person
from tests.sessions import PASSWORD, member


def entries(model: type, pk: Any = None) -> list[AuditEntry]:
    found = AuditEntry.objects.filter(content_type=ContentType.objects.get_for_model(model)).order_by("id")
    if pk is not None:
        found = found.filter(object_pk=str(pk))
    return list(found)


def last(model: type, pk: Any = None) -> AuditEntry:
    found = entries(model, pk)
    assert found, f"no audit entry for {model.__name__}"
    return found[-1]


def acme() -> Organization:
    return Organization.objects.get(slug="acme")


def contract() -> BuyerContract:
    with market_scope():
        return BuyerContract.objects.get(slug="acme-west")


def owner(email: str = "owner@acme.test") -> Client:
    client = Client()
    assert client.login(username=email, password=PASSWORD)
    return client


# --- the market loader ---------------------------------------------------------------------------


def test_the_market_file_records_what_it_creates_as_the_market(market):
    offer = last(Offer)
    assert offer.action == AuditEntry.Action.CREATE and offer.source == "market"
    assert offer.organization_id is None and offer.actor_id is None  # an operator's thing
    created = last(BuyerContract, contract().pk)
    assert created.source == "market" and created.organization_id == acme().pk
    assert created.changes["price"] == ["None", "30.00"]
    org = last(Organization, acme().pk)
    assert org.changes["name"] == ["None", "Acme Insurance"] and "signing_secret" not in org.changes
    with market_scope():
        key = ApiKey.objects.get(organization=acme(), name="ops")
    key_entry = last(ApiKey, key.pk)
    assert "key_hash" not in key_entry.changes and key.key_hash not in json.dumps(key_entry.changes)
    topup = [e for e in AuditEntry.objects.filter(organization=acme()) if e.kind == "money"]
    assert [(e.changes["kind"][1], e.changes["amount"][1]) for e in topup] == [("topup", "1000.00")]


def test_reloading_the_market_file_records_the_change_before_and_after(market):
    from exchange.market import market_load
    from tests.conftest import market_copy

    data = market_copy()
    data["organizations"][0]["contracts"][0]["price"] = "32.50"
    market_load(data)

    entry = last(BuyerContract, contract().pk)
    assert entry.action == AuditEntry.Action.UPDATE and entry.source == "market"
    assert entry.changes["price"] == ["30.00", "32.50"]


# --- the API: the key is the actor -------------------------------------------------------------


def test_an_api_patch_of_a_contract_is_recorded_with_its_key(market):
    response = api_client(ACME_KEY).patch("/api/v1/contracts/ctr_acme_west", {"price": "35.00"}, format="json")
    assert response.status_code == 200, response.content

    entry = last(BuyerContract, contract().pk)
    with market_scope():
        key = ApiKey.objects.get(organization=acme(), name="ops")
    assert entry.source == "api" and entry.api_key_id == key.pk and entry.actor_id is None
    assert entry.who == f"API key ops ({key.prefix}…)"
    assert entry.changes["price"] == ["30.00", "35.00"]
    assert entry.organization_id == acme().pk


def test_a_refused_api_patch_records_nothing(market):
    before = AuditEntry.objects.count()
    response = api_client(ACME_KEY).patch("/api/v1/contracts/ctr_acme_west", {"price": "-1"}, format="json")
    assert response.status_code == 422
    assert AuditEntry.objects.count() == before
    assert contract().price == Decimal("30.00")


# --- the portal ----------------------------------------------------------------------------------


def test_a_portal_change_of_a_campaign_is_recorded_with_the_member(market):
    portal = owner("owner@leadgen.test")
    response = portal.post("/portal/campaigns/cmp_leadgen_auto/terms/", {"floor": "7.25"})
    assert response.status_code in (200, 302), response.content

    with market_scope():
        campaign = Campaign.objects.get(public_id="cmp_leadgen_auto")
    entry = last(Campaign, campaign.pk)
    assert entry.actor_email == "owner@leadgen.test" and entry.source == "portal"
    assert entry.changes["floor"] == ["5.00", "7.25"]


def test_revoking_a_key_in_the_portal_is_recorded(market):
    with market_scope():
        key = ApiKey.objects.get(organization=acme(), name="reports-only")
    response = owner().post(f"/portal/keys/{key.pk}/revoke/")
    assert response.status_code in (200, 302)

    entry = last(ApiKey, key.pk)
    assert entry.actor_email == "owner@acme.test"
    assert entry.changes["revoked_at"][0] == "None" and entry.changes["revoked_at"][1] != "None"


def test_a_new_member_and_a_role_change_are_recorded(market):
    member("analyst@acme.test", "acme", "analyst")
    from accounts.models import Membership

    membership = Membership.objects.get(user__email="analyst@acme.test")
    assert last(Membership, membership.pk).changes["role"] == ["None", "analyst"]
    response = owner().post(f"/portal/team/members/{membership.pk}/role/", {"role": "manager"})
    assert response.status_code in (200, 302)
    entry = last(Membership, membership.pk)
    assert entry.actor_email == "owner@acme.test" and entry.changes["role"] == ["analyst", "manager"]


# --- services that write with update() or book money ------------------------------------------


def test_queryset_updates_are_recorded(market):
    organization_status_set(organization=acme(), status="suspended")
    assert last(Organization, acme().pk).changes == {"status": ["active", "suspended"]}

    with market_scope():
        key = ApiKey.objects.get(organization=acme(), name="reports-only")
    api_key_scopes_set(api_key=key, scopes=["reports", "purchases"])
    assert last(ApiKey, key.pk).changes == {"scopes": ["['reports']", "['reports', 'purchases']"]}


def test_a_breaker_hold_and_its_lifting_are_recorded_as_the_system(market):
    target = contract()
    assert contract_hold(contract_id=target.pk, hold="breaker", reason="RTB timeouts")
    held = last(BuyerContract, target.pk)
    assert held.source == "system" and held.actor_id is None
    assert held.changes["hold"] == ["None", "breaker"] and held.changes["hold_reason"] == ["", "RTB timeouts"]
    assert contract_breaker_resume(contract_id=target.pk, reason="answered")
    assert last(BuyerContract, target.pk).changes["hold"] == ["breaker", "None"]
    count = AuditEntry.objects.count()
    assert not contract_breaker_resume(contract_id=target.pk, reason="again")  # nothing changed
    assert AuditEntry.objects.count() == count


def test_money_operations_are_recorded_with_their_amounts(market):
    credit_limit_set(organization=acme(), credit_limit=Decimal("250"))
    limits = [e for e in AuditEntry.objects.filter(organization=acme()) if e.kind == "account limits"]
    assert limits[-1].changes == {"credit_limit": ["0.00", "250.00"]}

    topup_record(organization=acme(), amount=Decimal("99.5"), reference="wire-7", idempotency_key="t-7")
    topup_record(organization=acme(), amount=Decimal("99.5"), reference="wire-7", idempotency_key="t-7")  # a retry
    topups = [
        e for e in AuditEntry.objects.filter(organization=acme()) if e.changes.get("reference") == ["None", "wire-7"]
    ]
    assert len(topups) == 1 and topups[0].changes["amount"] == ["None", "99.50"]


def test_a_payout_is_recorded_in_the_sellers_trail(market):
    assert (
        api_client(LEADGEN_KEY)
        .post("/api/v1/leads", lead_body(1, campaign="cmp_leadgen_auto"), format="json")
        .json()["status"]
        == "sold"
    )
    leadgen = Organization.objects.get(slug="leadgen")
    payout_record(
        seller=leadgen,
        amount=Decimal("10"),
        period_start=dt.date(2026, 11, 1),
        period_end=dt.date(2026, 11, 30),
        reference="tr-1",
        idempotency_key="p-1",
    )
    entry = [e for e in AuditEntry.objects.filter(organization=leadgen) if e.kind == "money"][-1]
    assert entry.changes["kind"] == ["None", "payout"] and entry.changes["amount"] == ["None", "10.00"]


# --- admin -------------------------------------------------------------------------------------


def test_an_operator_suppression_in_admin_is_recorded_without_the_email(market, operator_client):
    response = operator_client.post(
        "/admin/leads/suppression/add/", {"consumer": "jane.doe@example.com", "reason": "asked"}, follow=True
    )
    assert response.status_code == 200
    entry = last(Suppression)
    assert entry.actor_email == "op@gavel.test" and entry.source == "admin"
    assert "jane.doe" not in json.dumps([entry.changes, entry.object_repr])


def test_an_operators_view_of_decrypted_pii_is_recorded(market, operator_client):
    answer = api_client(LEADGEN_KEY).post("/api/v1/leads", lead_body(3, campaign="cmp_leadgen_auto"), format="json")
    with market_scope():
        lead = Lead.objects.get(public_id=answer.json()["lead_id"])
    before = len(entries(Lead, lead.pk))

    page = operator_client.get(f"/admin/leads/lead/{lead.pk}/change/").content.decode()
    assert person(3)["email"] in page

    views = entries(Lead, lead.pk)
    assert len(views) == before + 1
    view = views[-1]
    assert view.action == AuditEntry.Action.ACCESS and view.actor_email == "op@gavel.test"
    assert view.organization_id == lead.organization_id and view.additional_data == {"viewed": "decrypted PII"}
    operator_client.get("/admin/leads/lead/")  # the list shows no PII: not a view of it
    assert len(entries(Lead, lead.pk)) == before + 1


def test_operators_see_the_whole_trail_in_admin(market, operator_client):
    page = html.unescape(operator_client.get("/admin/accounts/auditentry/").content.decode())
    assert "Acme Insurance" in page and "LeadGen Co" in page and "Auto insurance (US)" in page


# --- no consumer PII in any entry ----------------------------------------------------------------


def test_masking_hides_emails_and_phones_but_not_dates_or_amounts():
    assert audit_mask("mail jane.doe@example.com now") == "mail j•••@example.com now"
    assert audit_mask({"a": ["+1 201 555 0123", "(415) 555-0199"]}) == {"a": ["•••23", "•••99"]}
    assert audit_mask("2026-11-22 10:00:00, 10000.00, ctr_acme_west") == "2026-11-22 10:00:00, 10000.00, ctr_acme_west"


def test_no_entry_holds_a_consumers_email_or_phone(market, operator_client):
    who = person(5)
    answer = api_client(LEADGEN_KEY).post("/api/v1/leads", lead_body(5, campaign="cmp_leadgen_auto"), format="json")
    with market_scope():
        lead = Lead.objects.get(public_id=answer.json()["lead_id"])
    operator_client.get(f"/admin/leads/lead/{lead.pk}/change/")
    # A person types a consumer's details where text is free: a contract's filter, a return's note…
    api_client(ACME_KEY).patch(
        "/api/v1/contracts/ctr_acme_west",
        {"filters": {"field": "email", "op": "not_in", "value": [who["email"], who["phone"]]}},
        format="json",
    )
    text = json.dumps(
        [[e.changes, e.object_repr, e.additional_data, e.changes_text] for e in AuditEntry.objects.all()],
        ensure_ascii=False,
    )
    assert AuditEntry.objects.count() > 10
    for secret in (who["email"], who["phone"], who["phone"][2:], "Jane"):
        assert secret not in text, secret


# --- the portal's trail ------------------------------------------------------------------------


def test_the_trail_shows_only_the_organizations_own_entries(market):
    api_client(ACME_KEY).patch("/api/v1/contracts/ctr_acme_west", {"price": "36.00"}, format="json")
    page = html.unescape(owner().get("/portal/audit/").content.decode())
    assert "Acme Insurance" in page and "30.00" in page and "36.00" in page
    assert "API key ops" in page and "via api" in page
    assert "LeadGen Co" not in page and "leadgen-auto" not in page and "Auto insurance (US)" not in page
    assert 'When (<span class="tz">America/New_York</span>)' in page
    assert "pings" not in page  # an organization's own fields only, not its relations


# 03:00 UTC on December 4 is 22:00 on December 3 in New York, Acme's zone.
@time_machine.travel(dt.datetime(2026, 12, 4, 3, 0, tzinfo=dt.UTC), tick=False)
def test_the_trail_filters_by_kind_and_day_in_the_organizations_zone(market):
    organization_status_set(organization=acme(), status="suspended")
    organization_status_set(organization=acme(), status="active")
    portal = owner()
    page = html.unescape(portal.get("/portal/audit/?kind=organization").content.decode())
    assert "suspended" in page and "Acme West" not in page.split("<tbody>", 1)[1].split("</table>")[-1]
    day = portal.get("/portal/audit/?kind=organization&since=2026-12-03&until=2026-12-03")
    assert day.context["page"].paginator.count == 2
    assert (
        portal.get("/portal/audit/?kind=organization&since=2026-12-04&until=2026-12-04").context["page"].paginator.count
        == 0
    )
    empty = html.unescape(portal.get("/portal/audit/?kind=organization&until=2026-12-02").content.decode())
    assert "Nothing matches these filters." in empty


def test_bad_filters_are_explained_not_a_500(market):
    response = owner().get("/portal/audit/?since=2026-12-05&until=2026-12-01&kind=nope")
    assert response.status_code == 400
    page = html.unescape(response.content.decode())
    assert "These filters cannot be used" in page and "Select a valid choice" in page


def test_the_trail_is_for_owners_and_managers(market):
    assert member("manager@acme.test", "acme", "manager").get("/portal/audit/").status_code == 200
    analyst = member("analyst@acme.test", "acme", "analyst")
    response = analyst.get("/portal/audit/")
    assert response.status_code == 403
    assert "Audit trail" not in analyst.get("/portal/").content.decode()
    assert Client().get("/portal/audit/").status_code == 302  # to the login


def test_the_trail_pages_fifty_entries_at_a_time(market):
    for n in range(60):
        credit_limit_set(organization=acme(), credit_limit=Decimal(n + 1))
    portal = owner()
    first = portal.get("/portal/audit/")
    assert len(first.context["page"]) == 50 and first.context["page"].has_next()
    assert "Older →" in first.content.decode()


@pytest.mark.parametrize("role", ["owner", "manager"])
def test_another_organizations_member_never_sees_acme(market, role):
    page = member(f"{role}@leadgen.test", "leadgen", role).get("/portal/audit/").content.decode()
    assert "Acme" not in page
