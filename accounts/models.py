"""Tenants and people: users, organizations (the tenant), memberships and API keys."""

from __future__ import annotations

import base64
import secrets
import zoneinfo
from typing import Any, ClassVar

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.encoding import smart_str
from django.utils.timezone import now
from django_scopes import ScopedManager

from core.audit import audit_context_current, audit_mask


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("A user needs an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address; operators are staff."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Operators: may use the admin.")
    date_joined = models.DateTimeField(default=now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


def timezone_validate(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"'{value}' is not a time zone (use an IANA name such as America/New_York).") from exc


def signing_secret_new() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Organization(models.Model):
    """The tenant: a lead buyer and/or seller. Everything it owns carries ``organization``."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    is_buyer = models.BooleanField("buyer", default=False)
    is_seller = models.BooleanField("seller", default=False)
    timezone = models.CharField(max_length=64, default="UTC", validators=[timezone_validate])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    rate_limit_per_second = models.PositiveIntegerField(
        "rate limit per second",
        default=50,
        validators=[MinValueValidator(1)],
        help_text="API requests each of this organization's keys may make in one second; more are answered "
        "429 rate_limited with Retry-After.",
    )
    signing_secret = models.CharField(
        max_length=80,
        default=signing_secret_new,
        help_text="Signs every request Gavel sends this organization (RTB, delivery): Standard Webhooks.",
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def roles(self) -> list[str]:
        return [role for role, on in (("buyer", self.is_buyer), ("seller", self.is_seller)) if on]


class Membership(models.Model):
    """A user's place in an organization."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MANAGER = "manager", "Manager"
        ANALYST = "analyst", "Analyst"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANALYST)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["organization__name", "user__email"]
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} · {self.organization} ({self.role})"

    @property
    def can_manage(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.MANAGER)


class ApiKey(models.Model):
    """An API key of an organization: shown once, stored as a prefix and a SHA-256 hash."""

    class Scope(models.TextChoices):
        LEADS = "leads", "Leads (ping, post, full lead)"
        PURCHASES = "purchases", "Purchases"
        CONTRACTS = "contracts", "Contracts"
        REPORTS = "reports", "Reports"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters of the key, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Updated at most once a minute.")
    rotated_at = models.DateTimeField(null=True, blank=True, help_text="When its secret was last replaced.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["organization__name", "name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Invitation(models.Model):
    """An owner's invitation to join the organization: a one-time link, stored as a SHA-256 hash.

    Pending until accepted, cancelled (by an owner, or by a newer invitation to the same address)
    or expired; the raw token only ever travels in the email (and once on the owner's page).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    cancelled_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(organization="organization")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization} ({self.role})"

    @property
    def state(self) -> str:
        """pending, accepted, cancelled or expired."""
        if self.accepted_at is not None:
            return "accepted"
        if self.cancelled_at is not None:
            return "cancelled"
        if self.expires_at <= now():
            return "expired"
        return "pending"


def audit_organization_id(instance: models.Model) -> int | None:
    """The organization whose trail shows a change of ``instance``: the organization itself, the
    ``organization`` of a tenant row, an ``audit_organization_id`` the model names; None for the
    exchange's own things (offers), which only operators see."""
    if isinstance(instance, Organization):
        return instance.pk
    named = getattr(instance, "audit_organization_id", None)
    if named is not None:
        return int(named)
    owner = getattr(instance, "organization_id", None)
    return int(owner) if owner is not None else None


class AuditEntryManager(LogEntryManager):  # type: ignore[misc]
    """auditlog's manager, completed with who acted (``core.audit``'s context), the organization
    whose trail shows the entry, and every text masked of consumer PII."""

    def _complete(self, instance: models.Model, kwargs: dict[str, Any]) -> None:
        context = audit_context_current()
        kwargs.setdefault("organization_id", audit_organization_id(instance))
        kwargs.setdefault("actor_id", context.actor_id)
        kwargs.setdefault("actor_email", context.actor_email)
        kwargs.setdefault("api_key_id", context.api_key_id)
        kwargs.setdefault("source", context.source)
        kwargs.setdefault("remote_addr", context.remote_addr)
        kwargs.setdefault("object_repr", audit_mask(smart_str(instance)))
        if kwargs.get("changes") is not None:
            kwargs["changes"] = audit_mask(kwargs["changes"])
        if kwargs.get("additional_data") is not None:
            kwargs["additional_data"] = audit_mask(kwargs["additional_data"])
        kwargs["serialized_data"] = None  # never a copy of the whole row

    def log_create(self, instance: models.Model, force_log: bool = False, **kwargs: Any) -> AuditEntry | None:
        if kwargs.get("changes") is None and not force_log:
            return None
        self._complete(instance, kwargs)
        return super().log_create(instance, force_log=force_log, **kwargs)  # type: ignore[no-any-return]

    def log_m2m_changes(self, changed_queryset: Any, instance: models.Model, *args: Any, **kwargs: Any) -> Any:
        self._complete(instance, kwargs)
        return super().log_m2m_changes(changed_queryset, instance, *args, **kwargs)


class AuditEntry(AbstractLogEntry):  # type: ignore[misc]
    """One change (or one view of decrypted PII) in the audit trail: auditlog's entry, with the
    organization whose trail shows it, the API key that acted and where the change came from.

    Written only through :class:`AuditEntryManager` (auditlog's signals, ``core.audit``); never
    changed.
    """

    class Source(models.TextChoices):
        PORTAL = "portal", "Portal"
        ADMIN = "admin", "Admin"
        API = "api", "API"
        MARKET = "market", "Market file"
        SYSTEM = "system", "System"

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=True
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SYSTEM)

    objects = AuditEntryManager()

    class Meta(AbstractLogEntry.Meta):  # type: ignore[misc]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [models.Index(fields=["organization", "-timestamp"], name="audit_org_time")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_repr}"

    @property
    def who(self) -> str:
        """The person (email), the API key (name and prefix), the market file or the system."""
        if self.actor_email:
            return self.actor_email
        if self.api_key_id is not None:
            key = self.api_key
            return f"API key {key.name} ({key.prefix}…)" if key is not None else "API key"
        return self.get_source_display()

    @property
    def kind(self) -> str:
        """What was changed, in words: "contract", "API key"…"""
        return AUDIT_KIND_NAMES.get((self.content_type.app_label, self.content_type.model), self.content_type.name)

    @property
    def verb(self) -> str:
        return {0: "created", 1: "changed", 2: "deleted", 3: "viewed"}.get(self.action, "recorded")

    @property
    def change_rows(self) -> list[tuple[str, str, str]]:
        """(field, before, after) for each change; m2m changes read "added: …" / "removed: …"."""
        rows = []
        for field, values in sorted((self.changes or {}).items()):
            label = field.replace("_", " ")
            if isinstance(values, dict):  # many-to-many
                verb = "added" if values.get("operation") == "add" else "removed"
                rows.append((label, "", f"{verb}: {', '.join(map(str, values.get('objects', [])))}"))
            elif isinstance(values, list) and len(values) == 2:
                before, after = ("—" if v in (None, "None", "", "{}", "[]") else str(v) for v in values)
                # A creation lists what was set: not the empty fields, nor the ids its title names.
                if self.action == 0 and (after == "—" or field in _CREATION_SKIPPED):
                    continue
                rows.append((label, "" if self.action == 0 else before, after))
        viewed = (self.additional_data or {}).get("viewed")
        if viewed:
            rows.append(("viewed", "", str(viewed)))
        return rows


_CREATION_SKIPPED = {"organization", "offer", "user", "created_at"}

# The audited things, in words, by (app label, model); the portal's trail filters by these keys.
AUDIT_KINDS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "contract": ("Contracts", [("contracts", "buyercontract")]),
    "campaign": ("Campaigns", [("contracts", "campaign")]),
    "organization": ("Organization", [("accounts", "organization")]),
    "member": ("Members", [("accounts", "membership")]),
    "key": ("API keys", [("accounts", "apikey")]),
    "money": ("Money", [("billing", "ledgertransaction"), ("billing", "ledgeraccount")]),
    "return": ("Returns", [("exchange", "return")]),
    "suppression": ("Suppressions", [("leads", "suppression")]),
    "lead": ("Lead data viewed", [("leads", "lead")]),
    "offer": ("Offers", [("exchange", "offer")]),
}
AUDIT_KIND_NAMES: dict[tuple[str, str], str] = {
    ("contracts", "buyercontract"): "contract",
    ("contracts", "campaign"): "campaign",
    ("accounts", "organization"): "organization",
    ("accounts", "membership"): "member",
    ("accounts", "apikey"): "API key",
    ("billing", "ledgertransaction"): "money",
    ("billing", "ledgeraccount"): "account limits",
    ("exchange", "return"): "return",
    ("leads", "suppression"): "suppression",
    ("leads", "lead"): "lead",
    ("exchange", "offer"): "offer",
}
