"""``manage.py load_market``: round trip, idempotency, and bad files that change nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Membership, Organization, User
from accounts.services import api_key_authenticate
from accounts.tenancy import market_scope
from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from contracts.models import BuyerContract, Campaign
from exchange.models import Offer
from tests.conftest import ACME_KEY, market_copy

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "exchange" / "fixtures" / "demo_market.yaml"


def load(tmp_path: Path, data: object, suffix: str = ".yaml") -> dict:
    path = tmp_path / f"market{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    out = StringIO()
    call_command("load_market", str(path), stdout=out)
    return json.loads(out.getvalue())


def _rows(queryset) -> list[dict]:
    # updated_at moves on every upsert; the content must not.
    return [{k: v for k, v in row.items() if k != "updated_at"} for row in queryset.values()]


def snapshot() -> dict[str, object]:
    with market_scope():
        return {
            "offers": _rows(Offer.objects.order_by("slug")),
            "organizations": list(Organization.objects.order_by("slug").values()),
            "users": list(User.objects.order_by("email").values_list("email", "password", "is_staff")),
            "memberships": list(Membership.objects.order_by("id").values_list("user_id", "organization_id", "role")),
            "keys": list(ApiKey.objects.order_by("id").values_list("name", "key_hash", "scopes", "revoked_at")),
            "contracts": _rows(BuyerContract.objects.order_by("slug")),
            "campaigns": _rows(Campaign.objects.order_by("slug")),
            "ledger": list(LedgerEntry.objects.order_by("id").values_list("account_id", "amount")),
            "accounts": list(LedgerAccount.objects.order_by("id").values_list("kind", "balance", "credit_limit")),
        }


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_creates_everything_the_file_declares(tmp_path, suffix):
    report = load(tmp_path, market_copy(), suffix)

    assert set(report["offers"]) == {"auto-insurance"}
    assert set(report["organizations"]) == {"acme", "charlie", "leadgen"}
    assert report["contracts"] == {"acme-west": "ctr_acme_west", "charlie-any": "ctr_charlie_any"}
    assert report["campaigns"] == {"charlie-auto": "cmp_charlie_auto", "leadgen-auto": "cmp_leadgen_auto"}
    assert sorted(k["name"] for k in report["api_keys"]) == ["all", "ops", "prod", "reports-only"]
    with market_scope():
        offer = Offer.objects.get(slug="auto-insurance")
        assert [f["name"] for f in offer.fields] == ["state", "zip", "age", "email", "phone", "first_name"]
        assert offer.margin_percent == Decimal("20")
        acme = Organization.objects.get(slug="acme")
        assert (acme.name, acme.is_buyer, acme.is_seller, acme.timezone) == (
            "Acme Insurance",
            True,
            False,
            "America/New_York",
        )
        contract = BuyerContract.objects.get(slug="acme-west")
        assert contract.price == Decimal("30.00") and contract.max_price == Decimal("60.00")
        assert contract.cap_day == 100 and contract.cap_month is None
        assert contract.filters == {"field": "state", "op": "in", "value": ["CA", "OR", "WA"]}
        campaign = Campaign.objects.get(slug="leadgen-auto")
        assert campaign.floor == Decimal("5.00") and campaign.organization.slug == "leadgen"
        balance = LedgerAccount.objects.get(organization=acme, kind="buyer_balance")
        assert balance.balance == Decimal("1000.00")
        assert LedgerAccount.objects.get(organization=None, kind="cash").balance == Decimal("-1000.00")
    owner = User.objects.get(email="owner@acme.test")
    assert owner.check_password("correct-horse-battery")
    assert Membership.objects.get(user=owner).role == "owner"
    assert api_key_authenticate(ACME_KEY).organization == acme


def test_loading_twice_changes_nothing_and_prints_no_new_key(tmp_path):
    first = load(tmp_path, market_copy())
    before = snapshot()

    second = load(tmp_path, market_copy())

    assert snapshot() == before
    assert second["api_keys"] == [] and second["created"] == []
    assert second["contracts"] == first["contracts"] and second["campaigns"] == first["campaigns"]
    assert LedgerTransaction.objects.filter(kind="topup").count() == 1


def test_a_changed_file_updates_by_slug(tmp_path):
    load(tmp_path, market_copy())
    data = market_copy()
    data["organizations"][0]["contracts"][0]["price"] = "32.50"
    data["organizations"][0]["name"] = "Acme Insurance Group"

    report = load(tmp_path, data)

    assert report["created"] == []
    with market_scope():
        assert BuyerContract.objects.get(slug="acme-west").price == Decimal("32.50")
        assert BuyerContract.objects.count() == 2
    assert Organization.objects.get(slug="acme").name == "Acme Insurance Group"


def test_a_generated_key_is_printed_once_and_works(tmp_path):
    data = market_copy()
    data["organizations"][2]["api_keys"].append({"name": "generated", "scopes": ["leads"]})
    report = load(tmp_path, data)
    generated = next(k for k in report["api_keys"] if k["name"] == "generated")

    assert api_key_authenticate(generated["key"]).organization.slug == "leadgen"
    assert all(k["name"] != "generated" for k in load(tmp_path, data)["api_keys"])


def test_the_demo_market_loads(tmp_path):
    out = StringIO()
    call_command("load_market", str(DEMO), stdout=out)
    report = json.loads(out.getvalue())
    assert len(report["organizations"]) == 9
    assert sum(1 for o in Organization.objects.all() if o.is_buyer) == 5
    assert sum(1 for o in Organization.objects.all() if o.is_seller) == 3
    with market_scope():
        fields = Offer.objects.get(slug="auto-insurance").field_specs
    assert any(f.pii for f in fields.values()) and any(f.ping == "required" for f in fields.values())


def _bad(mutate):
    data = market_copy()
    mutate(data)
    return data


def _set(path, value):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


ACME = ["organizations", 0]
WEST = [*ACME, "contracts", 0]

BAD_FILES = [
    (_set(["offers", 0, "fields", 1, "type"], "postcode"), "offers[0].fields[1].type"),
    (_set(["offers", 0, "colour"], "red"), "offers[0].colour"),
    (_set(["offers", 0, "distribution"], "auction"), "offers[0].distribution"),
    (_set(["offers", 0, "margin_percent"], "lots"), "offers[0].margin_percent"),
    (_set([*ACME, "timezone"], "Mars/Olympus"), "organizations[0].timezone"),
    (_set([*ACME, "roles"], ["broker"]), "organizations[0].roles"),
    (_set([*ACME, "users", 0, "role"], "king"), "organizations[0].users[0].role"),
    (_set([*ACME, "api_keys", 0, "scopes"], ["root"]), "organizations[0].api_keys[0].scopes[0]"),
    (_set([*WEST, "offer"], "boats"), "organizations[0].contracts[0].offer"),
    (
        _set([*WEST, "filters"], {"field": "colour", "op": "eq", "value": "red"}),
        "organizations[0].contracts[0].filters.field",
    ),
    (
        _set(
            [*WEST, "filters"],
            {"all": [{"field": "state", "op": "eq", "value": "CA"}, {"field": "age", "op": "gt", "value": "old"}]},
        ),
        "organizations[0].contracts[0].filters.all[1].value",
    ),
    (
        _set([*WEST, "filters"], {"field": "email", "op": "eq", "value": "a@b.co"}),
        "organizations[0].contracts[0].filters.field",
    ),
    (
        _set([*WEST, "modifiers"], [{"when": {"field": "state", "op": "eq", "value": "CA"}, "add": "lots"}]),
        "organizations[0].contracts[0].modifiers[0].add",
    ),
    (_set([*WEST, "caps"], {"hour": 5}), "organizations[0].contracts[0].caps.hour"),
    (_set([*WEST, "caps"], {"day": -1}), "organizations[0].contracts[0].caps.day"),
    (_set([*WEST, "budget"], {"day": "ten"}), "organizations[0].contracts[0].budget.day"),
    (_set([*WEST, "schedule"], {"days": ["funday"]}), "organizations[0].contracts[0].schedule.days[0]"),
    (_set([*WEST, "schedule"], {"hours": ["08:00", "25:00"]}), "organizations[0].contracts[0].schedule.hours[1]"),
    (_set([*WEST, "delivery"], {"method": "fax"}), "organizations[0].contracts[0].delivery.method"),
    (_set([*WEST, "price"], None), "organizations[0].contracts[0].price"),
    (_set([*WEST, "blocked_sellers"], ["nobody"]), "organizations[0].contracts[0].blocked_sellers[0]"),
    (_set([*WEST, "surprise"], 1), "organizations[0].contracts[0].surprise"),
    (_set(["organizations", 2, "campaigns", 0, "offer"], "boats"), "organizations[2].campaigns[0].offer"),
    (
        _set(["organizations", 2, "campaigns", 0, "direct_route"], {"contract": "nope", "price": "20.00"}),
        "organizations[2].campaigns[0].direct_route.contract",
    ),
    (_set(["organizations", 2, "campaigns", 0, "floor"], "cheap"), "organizations[2].campaigns[0].floor"),
    (_set(["organizations", 2, "roles"], ["buyer"]), "organizations[2].campaigns[0].organization"),
    (_set([*ACME, "slug"], None), "organizations[0].slug"),
    (_set([*ACME, "credit_limit"], "-5.00"), "organizations[0].credit_limit"),
    (_set([*ACME, "low_balance_threshold"], "-1.00"), "organizations[0].low_balance_threshold"),
    (_set(["organizations"], {"acme": {}}), "organizations"),
]


@pytest.mark.parametrize(("mutate", "path"), BAD_FILES, ids=[p for _, p in BAD_FILES])
def test_a_bad_file_names_the_path_and_changes_nothing(tmp_path, mutate, path):
    load(tmp_path, market_copy())
    before = snapshot()
    data = market_copy()
    data["organizations"][1]["name"] = "Charlie Renamed"  # an earlier, valid change in the same file
    mutate(data)

    with pytest.raises(CommandError) as error:
        load(tmp_path, data)

    assert str(error.value).startswith(f"{path}: ")
    assert snapshot() == before


def test_a_bad_file_on_an_empty_exchange_creates_nothing(tmp_path):
    data = market_copy()
    data["organizations"][2]["campaigns"][0]["offer"] = "boats"
    with pytest.raises(CommandError, match=r"organizations\[2\].campaigns\[0\].offer: unknown offer 'boats'"):
        load(tmp_path, data)
    assert Organization.objects.count() == 0 and Offer.objects.count() == 0 and User.objects.count() == 0


def test_unparsable_and_missing_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("offers: [unclosed")
    with pytest.raises(CommandError, match="cannot parse the file"):
        call_command("load_market", str(broken), stdout=StringIO())
    with pytest.raises(CommandError, match="no such file"):
        call_command("load_market", str(tmp_path / "absent.yaml"), stdout=StringIO())
    not_json = tmp_path / "bad.json"
    not_json.write_text("{'single': quotes}")
    with pytest.raises(CommandError, match="cannot parse the file"):
        call_command("load_market", str(not_json), stdout=StringIO())


def test_a_campaign_webhook_url_becomes_an_endpoint_once_and_thresholds_load(tmp_path):
    from exchange.webhooks import WebhookEndpoint

    data = market_copy()
    data["organizations"][2]["campaigns"][0]["webhook_url"] = "https://hooks.leadgen.test/gavel"
    data["organizations"][0]["low_balance_threshold"] = "250.00"
    first = load(tmp_path, data)
    again = load(tmp_path, data)

    [endpoint] = first["webhook_endpoints"]
    assert endpoint["organization"] == "leadgen" and endpoint["secret"].startswith("whsec_")
    assert "webhook_endpoints" not in again
    with market_scope():
        stored = WebhookEndpoint.objects.get()
        assert (stored.url, stored.event_types) == (
            "https://hooks.leadgen.test/gavel",
            ["lead.sold", "lead.unsold", "lead.returned"],
        )
        account = LedgerAccount.objects.get(organization__slug="acme", kind="buyer_balance")
    assert account.low_balance_threshold == Decimal("250.00")
