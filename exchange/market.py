"""Market as code: load offers, organizations, people, keys, contracts and campaigns from a file.

The file's shape is part of the public contract (DESIGN.md §5). Loading is an idempotent upsert
by slug inside one transaction: a bad file raises :class:`MarketError` naming the path of the
bad key (``organizations[1].contracts[0].filters.all[0].field``) and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import ApiKey, Organization
from accounts.services import (
    AccountsError,
    api_key_create,
    api_key_hash,
    api_key_revoke,
    api_key_scopes_set,
    membership_set,
    organization_upsert,
    user_upsert,
)
from accounts.tenancy import market_scope
from billing.services import BillingError, credit_limit_set, low_balance_threshold_set, topup_record
from contracts.services import campaign_upsert, contract_upsert
from contracts.terms import CampaignTermsInput, ContractTermsInput
from core.audit import audit_context
from core.json_document import MAX_DEPTH, JsonDocumentError, json_document_parse
from core.schema import SchemaError, offer_fields_parse
from exchange.auction.book import book_invalidate
from exchange.models import Offer
from exchange.webhooks import WebhookEndpoint, WebhookError, endpoint_create


class MarketError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


OFFER_KEYS = {
    "slug",
    "name",
    "status",
    "distribution",
    "pricing",
    "multisell_max",
    "hybrid_floor",
    "margin_percent",
    "floor",
    "max_bid",
    "min_score",
    "bid_ttl_seconds",
    "ping_timeout_ms",
    "reauction_cycles",
    "reauction_delay_seconds",
    "post_timeout_ms",
    "reject_rate_hold_percent",
    "one_to_one_consent",
    "fields",
}
ORGANIZATION_KEYS = {
    "slug",
    "name",
    "roles",
    "timezone",
    "status",
    "balance",
    "credit_limit",
    "low_balance_threshold",
    "rate_limit_per_second",
    "users",
    "api_keys",
    "contracts",
    "campaigns",
}
USER_KEYS = {"email", "password", "role", "name", "operator"}
API_KEY_KEYS = {"name", "scopes", "key"}
# Where a contract or campaign sits in the file; the rest of its keys are its terms
# (contracts.terms: one input shape for the market file, the API, the admin and the portal).
PLACEMENT_KEYS = {"slug", "id", "offer", "blocked_sellers", "blocked_buyers"}
CONTRACT_KEYS = {"slug", "id", "offer", "blocked_sellers", *ContractTermsInput(operator=True).fields}
CAMPAIGN_KEYS = {"slug", "id", "offer", "blocked_buyers", *CampaignTermsInput().fields}
# organizations[].contracts[].filters around a rule of the deepest kind (contracts.rules).
MARKET_MAX_DEPTH = MAX_DEPTH + 8
MONEY_FIELDS = {"hybrid_floor", "floor", "max_bid", "margin_percent"}  # an offer's


def _yaml_depth_check(text: str, path: Path) -> None:
    """Refuse YAML nested past ``MARKET_MAX_DEPTH`` before it is built: PyYAML builds nodes
    recursively and would run out of stack, while its event stream is read without recursion."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MARKET_MAX_DEPTH:
                raise MarketError(str(path), f"cannot parse the file: nested deeper than {MARKET_MAX_DEPTH} levels")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def market_read(path: Path) -> Any:
    """Parse a YAML or JSON market file (JSON is YAML, but its errors read better as JSON); any
    file that is not one, however broken or deep, is a :class:`MarketError`."""
    data = path.read_bytes()
    try:
        if path.suffix == ".json":
            return json_document_parse(data, max_depth=MARKET_MAX_DEPTH)
        text = data.decode("utf-8")
        _yaml_depth_check(text, path)
        return yaml.safe_load(text)
    except (JsonDocumentError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MarketError(str(path), f"cannot parse the file: {exc}") from exc


def _mapping(value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ("slug",)) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MarketError(path, "must be a mapping")
    for key in value:
        if key not in allowed:
            raise MarketError(f"{path}.{key}", "unknown key")
    for key in required:
        if value.get(key) in (None, ""):
            raise MarketError(f"{path}.{key}", "is required")
    # A slug names a row for the rest of the file: the same text everywhere, never a YAML number or true.
    if "slug" in value and not isinstance(value["slug"], str):
        raise MarketError(f"{path}.slug", "must be a string")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MarketError(path, "must be a list")
    return value


def _money(value: Any, path: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise MarketError(path, 'must be an amount such as "30.00"')
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise MarketError(path, f"'{value}' is not an amount such as \"30.00\"") from exc
    if not amount.is_finite():
        raise MarketError(path, f"'{value}' is not an amount such as \"30.00\"")
    return amount


def _rate_limit(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise MarketError(path, "must be a whole number of requests per second from 1 to 100000")
    return value


def _raise_model_error(exc: ValidationError, path: str, renames: dict[str, str] | None = None) -> None:
    renames = renames or {}
    if hasattr(exc, "error_dict"):
        field, messages = next(iter(exc.message_dict.items()))
        name = renames.get(field, field)
        # The JSON-ish fields' messages already carry their own path ("filters.all[0]: …",
        # "modifiers[1].multiply: …").
        message = messages[0]
        if message.startswith((f"{name}.", f"{name}:", f"{name}[")):
            key, _, rest = message.partition(": ")
            raise MarketError(f"{path}.{key}", rest) from exc
        raise MarketError(f"{path}.{name}", message) from exc
    raise MarketError(path, "; ".join(exc.messages)) from exc


class _Loader:
    def __init__(self) -> None:
        self.report: dict[str, Any] = {
            "offers": {},
            "organizations": {},
            "users": {},
            "contracts": {},
            "campaigns": {},
            "api_keys": [],
            "created": [],
        }
        self.offers: dict[str, Offer] = {}
        self.organizations: dict[str, Organization] = {}

    def offer(self, raw: Any, path: str) -> None:
        data = _mapping(raw, path, OFFER_KEYS, ("slug", "name"))
        slug = data["slug"]
        try:
            offer_fields_parse(data.get("fields", []), path="fields")
        except SchemaError as exc:
            raise MarketError(f"{path}.{exc.path}", exc.message) from exc
        offer = Offer.objects.filter(slug=slug).first() or Offer(slug=slug)
        created = offer.pk is None
        for key, value in data.items():
            if key == "slug":
                continue
            setattr(offer, key, _money(value, f"{path}.{key}") if key in MONEY_FIELDS else value)
        try:
            offer.full_clean()
        except ValidationError as exc:
            _raise_model_error(exc, path)
        offer.save()
        self.offers[slug] = offer
        self.report["offers"][slug] = offer.pk
        if created:
            self.report["created"].append(f"offer:{slug}")

    def offer_ref(self, slug: Any, path: str) -> Offer:
        offer = self.offers.get(slug) or Offer.objects.filter(slug=slug).first()
        if offer is None:
            raise MarketError(path, f"unknown offer '{slug}'")
        return offer

    def organization_ref(self, slug: Any, path: str) -> Organization:
        organization = self.organizations.get(slug) or Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise MarketError(path, f"unknown organization '{slug}'")
        return organization

    def organization(self, raw: Any, path: str) -> None:
        data = _mapping(raw, path, ORGANIZATION_KEYS, ("slug", "name"))
        roles = _list(data.get("roles", []), f"{path}.roles")
        for index, role in enumerate(roles):
            if not isinstance(role, str):
                raise MarketError(f"{path}.roles[{index}]", "must be buyer or seller")
        try:
            organization, created = organization_upsert(
                slug=data["slug"],
                name=data["name"],
                roles=roles,
                timezone_name=data.get("timezone", "UTC"),
                status=data.get("status", Organization.Status.ACTIVE),
                rate_limit_per_second=_rate_limit(data.get("rate_limit_per_second"), f"{path}.rate_limit_per_second"),
            )
        except AccountsError as exc:
            raise MarketError(f"{path}.roles", str(exc)) from exc
        except ValidationError as exc:
            _raise_model_error(exc, path, {"timezone": "timezone"})
        self.organizations[organization.slug] = organization
        self.report["organizations"][organization.slug] = organization.pk
        if created:
            self.report["created"].append(f"organization:{organization.slug}")
        for index, user in enumerate(_list(data.get("users"), f"{path}.users")):
            self.user(user, organization, f"{path}.users[{index}]")
        for index, key in enumerate(_list(data.get("api_keys"), f"{path}.api_keys")):
            self.api_key(key, organization, f"{path}.api_keys[{index}]")

    def user(self, raw: Any, organization: Organization, path: str) -> None:
        data = _mapping(raw, path, USER_KEYS, ("email",))
        email = str(data["email"])
        if "@" not in email:
            raise MarketError(f"{path}.email", f"'{email}' is not an email address")
        operator = data.get("operator")
        if operator is not None and not isinstance(operator, bool):
            raise MarketError(f"{path}.operator", "must be true or false")
        user = user_upsert(email=email, password=data.get("password"), name=data.get("name", ""), operator=operator)
        try:
            membership_set(user=user, organization=organization, role=data.get("role", "analyst"))
        except AccountsError as exc:
            raise MarketError(f"{path}.role", str(exc)) from exc
        self.report["users"][user.email] = user.pk

    def api_key(self, raw: Any, organization: Organization, path: str) -> None:
        data = _mapping(raw, path, API_KEY_KEYS, ("name",))
        scopes = _list(data.get("scopes", []), f"{path}.scopes")
        for index, scope in enumerate(scopes):
            if scope not in ApiKey.Scope.values:
                raise MarketError(
                    f"{path}.scopes[{index}]", f"unknown scope '{scope}' (use {', '.join(ApiKey.Scope.values)})"
                )
        fixed = data.get("key")
        with market_scope():
            existing = ApiKey.objects.filter(
                organization=organization, name=data["name"], revoked_at__isnull=True
            ).first()
        if existing is not None and (fixed is None or existing.key_hash == api_key_hash(str(fixed))):
            if sorted(existing.scopes) != sorted(scopes):
                api_key_scopes_set(api_key=existing, scopes=scopes)
            return
        if existing is not None:
            api_key_revoke(api_key=existing)
        try:
            key, raw_key = api_key_create(
                organization=organization,
                name=data["name"],
                scopes=scopes,
                raw_key=None if fixed is None else str(fixed),
            )
        except AccountsError as exc:
            raise MarketError(f"{path}.{'scopes' if 'scope' in str(exc) else 'key'}", str(exc)) from exc
        self.report["api_keys"].append(
            {"organization": organization.slug, "name": key.name, "prefix": key.prefix, "key": raw_key}
        )

    def contract(self, raw: Any, organization: Organization, path: str) -> None:
        data = _mapping(raw, path, CONTRACT_KEYS, ("slug", "offer"))
        offer = self.offer_ref(data["offer"], f"{path}.offer")
        terms = {key: value for key, value in data.items() if key not in PLACEMENT_KEYS}
        terms["name"] = data.get("name") or data["slug"]
        blocked = [
            self.organization_ref(slug, f"{path}.blocked_sellers[{i}]")
            for i, slug in enumerate(_list(data.get("blocked_sellers"), f"{path}.blocked_sellers"))
        ]
        try:
            contract, created = contract_upsert(
                organization=organization,
                offer=offer,
                slug=data["slug"],
                terms=terms,
                operator=True,
                blocked_sellers=blocked,
                public_id=data.get("id"),
            )
        except ValidationError as exc:
            _raise_model_error(exc, path)
        self.report["contracts"][contract.slug] = contract.public_id
        if created:
            self.report["created"].append(f"contract:{contract.slug}")

    def campaign(self, raw: Any, organization: Organization, path: str) -> None:
        data = _mapping(raw, path, CAMPAIGN_KEYS, ("slug", "offer"))
        offer = self.offer_ref(data["offer"], f"{path}.offer")
        terms = {key: value for key, value in data.items() if key not in PLACEMENT_KEYS}
        terms["name"] = data.get("name") or data["slug"]
        blocked = [
            self.organization_ref(slug, f"{path}.blocked_buyers[{i}]")
            for i, slug in enumerate(_list(data.get("blocked_buyers"), f"{path}.blocked_buyers"))
        ]
        try:
            campaign, created = campaign_upsert(
                organization=organization,
                offer=offer,
                slug=data["slug"],
                terms=terms,
                blocked_buyers=blocked,
                public_id=data.get("id"),
            )
        except ValidationError as exc:
            _raise_model_error(exc, path)
        self.report["campaigns"][campaign.slug] = campaign.public_id
        if campaign.webhook_url:
            self.seller_endpoint(organization, campaign.webhook_url, f"{path}.webhook_url")
        if created:
            self.report["created"].append(f"campaign:{campaign.slug}")

    def seller_endpoint(self, organization: Organization, url: str, path: str) -> None:
        """A campaign's ``webhook_url`` receives its organization's lead events (once per URL)."""
        if WebhookEndpoint.objects.filter(organization=organization, url=url).exists():
            return
        try:
            endpoint, secret = endpoint_create(
                organization=organization, url=url, event_types=["lead.sold", "lead.unsold", "lead.returned"]
            )
        except (WebhookError, ValueError) as exc:
            raise MarketError(path, str(exc)) from exc
        self.report.setdefault("webhook_endpoints", []).append(
            {"organization": organization.slug, "url": url, "id": endpoint.public_id, "secret": secret}
        )

    def money(self, data: dict[str, Any], organization: Organization, path: str) -> None:
        key = "credit_limit"  # the key being applied, named by a refusal
        try:
            credit_limit = _money(data.get("credit_limit"), f"{path}.credit_limit")
            if credit_limit is not None:
                credit_limit_set(organization=organization, credit_limit=credit_limit)
            key = "low_balance_threshold"
            if "low_balance_threshold" in data:
                threshold = _money(data["low_balance_threshold"], f"{path}.low_balance_threshold")
                low_balance_threshold_set(organization=organization, threshold=threshold)
            key = "balance"
            balance = _money(data.get("balance"), f"{path}.balance")
            if balance is not None and balance > 0:
                # Booked once, on the first load: re-loading the file never tops up twice.
                topup_record(
                    organization=organization,
                    amount=balance,
                    reference="opening balance (market file)",
                    idempotency_key=f"market:opening-balance:{organization.slug}",
                )
        except BillingError as exc:
            raise MarketError(f"{path}.{key}", str(exc)) from exc


def market_load(data: Any) -> dict[str, Any]:
    """Upsert everything the market document declares, all or nothing; return ids and new keys."""
    loader = _Loader()
    _mapping(data, "$", {"offers", "organizations"}, ())
    with market_scope(), transaction.atomic(), audit_context(source="market"):
        for index, offer in enumerate(_list(data.get("offers"), "offers")):
            loader.offer(offer, f"offers[{index}]")
        organizations = _list(data.get("organizations"), "organizations")
        for index, organization in enumerate(organizations):
            loader.organization(organization, f"organizations[{index}]")
        # Contracts before campaigns: a campaign's direct route may name any contract in the file.
        for index, raw in enumerate(organizations):
            organization = loader.organizations[raw["slug"]]
            for j, contract in enumerate(_list(raw.get("contracts"), f"organizations[{index}].contracts")):
                loader.contract(contract, organization, f"organizations[{index}].contracts[{j}]")
        for index, raw in enumerate(organizations):
            organization = loader.organizations[raw["slug"]]
            for j, campaign in enumerate(_list(raw.get("campaigns"), f"organizations[{index}].campaigns")):
                loader.campaign(campaign, organization, f"organizations[{index}].campaigns[{j}]")
            loader.money(raw, organization, f"organizations[{index}]")
        book_invalidate()  # offers too: a file may change nothing else
    return loader.report
