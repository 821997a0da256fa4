"""Roles hold in the services too: a write a portal page calls refuses an actor whose role lacks
the rights, or who belongs to another organization, whatever the view did."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Membership
from accounts.roles import RoleRefused, role_allows
from billing.models import LedgerAccount
from billing.services import low_balance_threshold_set
from exchange.webhooks import WebhookEndpoint, endpoint_create
from tests.sessions import member

pytestmark = pytest.mark.django_db


def membership(email: str) -> Membership:
    return Membership.objects.select_related("organization").get(user__email=email)


def test_each_role_has_the_rights_of_those_below_it(orgs):
    member("a@acme.test", "acme", "analyst")
    member("m@acme.test", "acme", "manager")
    analyst, manager, owner = membership("a@acme.test"), membership("m@acme.test"), membership("owner@acme.test")
    assert [role_allows(m, "analyst") for m in (analyst, manager, owner)] == [True, True, True]
    assert [role_allows(m, "manager") for m in (analyst, manager, owner)] == [False, True, True]
    assert [role_allows(m, "owner") for m in (analyst, manager, owner)] == [False, False, True]
    assert role_allows(None, "analyst") is False


def test_an_analyst_or_an_outsider_cannot_set_the_threshold_a_manager_can(orgs, in_market):
    member("a@acme.test", "acme", "analyst")
    member("m@acme.test", "acme", "manager")
    account = LedgerAccount.objects.get(organization=orgs["acme"], kind="buyer_balance")

    for actor in (membership("a@acme.test"), membership("charlie@charlie.test")):
        with pytest.raises(RoleRefused):
            low_balance_threshold_set(organization=orgs["acme"], threshold=Decimal("50.00"), actor=actor)
    account.refresh_from_db()
    assert account.low_balance_threshold is None

    low_balance_threshold_set(organization=orgs["acme"], threshold=Decimal("50.00"), actor=membership("m@acme.test"))
    account.refresh_from_db()
    assert account.low_balance_threshold == Decimal("50.00")


def test_an_analyst_cannot_add_a_webhook_endpoint(orgs, in_market):
    member("a@acme.test", "acme", "analyst")
    with pytest.raises(RoleRefused):
        endpoint_create(organization=orgs["acme"], url="https://example.com/hook", actor=membership("a@acme.test"))
    assert not WebhookEndpoint.objects.filter(organization=orgs["acme"]).exists()
