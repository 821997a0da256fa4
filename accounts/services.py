"""Writes for tenants and people. Each service owns its transaction."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, Invitation, Membership, Organization, User
from accounts.roles import RoleRefused, role_require
from accounts.tenancy import market_scope
from core.audit import audit_record
from core.cache import cache_get
from core.hooks import market_changed

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "gvl_"
API_KEY_MIN_LENGTH = 20
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class AccountsError(Exception):
    """A request on tenants or people that cannot be carried out; ``field`` names the form field
    it is about, when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def api_key_hash(raw_key: str) -> str:
    """The stored form of a key. Keys are long random strings, so a fast hash is enough."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_generate() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def user_upsert(*, email: str, password: str | None = None, name: str = "", operator: bool | None = None) -> User:
    """Create the user with this email, or update its password and name; email is case-blind.

    ``operator=True`` makes the user an exchange operator (staff and superuser: the admin).
    """
    email = email.strip().lower()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, name=name)
    elif password and not user.check_password(password):
        # Re-hashing an unchanged password would log the user out everywhere.
        user.set_password(password)
    if name:
        user.name = name
    if operator is not None:
        user.is_staff = user.is_superuser = operator
    user.save()
    return user


def membership_set(*, user: User, organization: Organization, role: str) -> Membership:
    """Give ``user`` the ``role`` in ``organization`` (one membership per pair)."""
    if role not in Membership.Role.values:
        raise AccountsError(f"unknown role '{role}' (use one of {', '.join(Membership.Role.values)})")
    membership, _ = Membership.objects.update_or_create(user=user, organization=organization, defaults={"role": role})
    return membership


def _scopes_check(scopes: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(scopes))
    unknown = [s for s in unique if s not in ApiKey.Scope.values]
    if unknown:
        raise AccountsError(f"unknown scope '{unknown[0]}' (use {', '.join(ApiKey.Scope.values)})", field="scopes")
    return unique


def api_key_create(
    *,
    organization: Organization,
    name: str,
    scopes: Iterable[str],
    raw_key: str | None = None,
    actor: Membership | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key and return it with its raw value, which is never stored nor shown again.

    ``raw_key`` fixes the value (tests, demo); it must start with ``gvl_`` and be long enough.
    ``actor``: the member creating it from the portal, who must be an owner (the market file and
    the operator act without one).
    """
    if actor is not None:
        role_require(actor, "owner", organization_id=organization.pk)
    name = _key_name_clean(name)
    scopes = _scopes_check(scopes)
    if raw_key is None:
        raw_key = api_key_generate()
    elif not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) < API_KEY_MIN_LENGTH:
        raise AccountsError(f"a key must start with '{API_KEY_PREFIX}' and be at least {API_KEY_MIN_LENGTH} characters")
    with market_scope():
        if ApiKey.objects.filter(key_hash=api_key_hash(raw_key)).exists():
            raise AccountsError("this key value is already in use")
        key = ApiKey.objects.create(
            organization=organization,
            name=name,
            prefix=raw_key[:12],
            key_hash=api_key_hash(raw_key),
            scopes=scopes,
        )
    return key, raw_key


def api_key_revoke(*, api_key: ApiKey, actor: Membership | None = None) -> ApiKey:
    """Revoke a key at once; revoking twice keeps the first revocation time. ``actor``: the
    portal's member, who must be an owner of the key's organization."""
    if actor is not None:
        role_require(actor, "owner", organization_id=api_key.organization_id)
    with market_scope(), transaction.atomic():
        revoked_at = timezone.now()
        if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=revoked_at):
            audit_record(api_key, changes={"revoked_at": (None, revoked_at)})
        api_key.refresh_from_db()
    cache.delete(api_key_cache_key(api_key.key_hash))
    return api_key


def api_key_scopes_set(*, api_key: ApiKey, scopes: Iterable[str]) -> ApiKey:
    """Give a live key exactly ``scopes``; requests made with it see them at once."""
    scopes = _scopes_check(scopes)
    with market_scope(), transaction.atomic():
        before = ApiKey.objects.select_for_update().get(pk=api_key.pk).scopes
        ApiKey.objects.filter(pk=api_key.pk).update(scopes=scopes)
        if before != scopes:
            audit_record(api_key, changes={"scopes": (before, scopes)})
        api_key.refresh_from_db()
    cache.delete(api_key_cache_key(api_key.key_hash))
    return api_key


def api_key_cache_key(digest: str) -> str:
    """Where the shared cache keeps the record of the key with this digest (see
    :func:`api_key_authenticate`)."""
    return f"gavel:api-key:{digest}"


def api_key_digest(raw_key: str) -> str | None:
    """The digest a key is stored and cached under, or None when ``raw_key`` cannot be a key."""
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) > 200:
        return None
    return api_key_hash(raw_key)


_ORG_FIELDS = ("slug", "name", "is_buyer", "is_seller", "timezone", "status", "rate_limit_per_second")


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key with this value, or None. Touches ``last_used_at`` at most once a minute.

    Every API call authenticates, so a found key is kept in the shared cache for a minute;
    revoking it, or changing its organization, forgets it at once (:func:`api_keys_forget`).
    """
    digest = api_key_digest(raw_key)
    if digest is None:
        return None
    cached = cache_get(api_key_cache_key(digest))
    if cached is not None:
        organization = Organization(pk=cached["organization_id"], **cached["organization"])
        return ApiKey(
            pk=cached["id"],
            organization=organization,
            name=cached["name"],
            prefix=cached["prefix"],
            key_hash=digest,
            scopes=cached["scopes"],
        )
    with market_scope():
        key = ApiKey.objects.select_related("organization").filter(key_hash=digest).first()
        if key is None or not hmac.compare_digest(key.key_hash, digest) or key.revoked_at is not None:
            return None
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
    snapshot = {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "organization_id": key.organization_id,
        "organization": {f: getattr(key.organization, f) for f in _ORG_FIELDS},
    }
    cache.set(api_key_cache_key(digest), snapshot, timeout=int(_LAST_USED_RESOLUTION.total_seconds()))
    return key


def api_keys_forget(*, organization: Organization) -> None:
    """Drop the organization's keys from the cache (its status or roles changed)."""
    with market_scope():
        digests = list(ApiKey.objects.filter(organization=organization).values_list("key_hash", flat=True))
    cache.delete_many([api_key_cache_key(d) for d in digests])


def organization_status_set(*, organization: Organization, status: str) -> Organization:
    """Activate or suspend an organization: its API keys and contracts follow at once."""
    if status not in Organization.Status.values:
        raise AccountsError(f"unknown status '{status}'")
    with transaction.atomic():
        before = Organization.objects.select_for_update().get(pk=organization.pk).status
        Organization.objects.filter(pk=organization.pk).update(status=status)
        organization.status = status
        if before != status:
            audit_record(organization, changes={"status": (before, status)})
    _organization_changed(organization)
    return organization


def _organization_changed(organization: Organization) -> None:
    api_keys_forget(organization=organization)
    market_changed()  # the contract book compiles organizations too


@transaction.atomic
def organization_upsert(
    *,
    slug: str,
    name: str,
    roles: Iterable[str],
    timezone_name: str = "UTC",
    status: str = Organization.Status.ACTIVE,
    rate_limit_per_second: int | None = None,
) -> tuple[Organization, bool]:
    """Create or update the organization with this slug; validated like a form. A
    ``rate_limit_per_second`` of None keeps the organization's (50 for a new one)."""
    roles = set(roles)
    unknown = roles - {"buyer", "seller"}
    if unknown:
        raise AccountsError(f"unknown role '{sorted(unknown)[0]}' (use buyer and/or seller)")
    organization = Organization.objects.filter(slug=slug).first()
    created = organization is None
    if organization is None:
        organization = Organization(slug=slug)
    organization.name = name
    organization.is_buyer = "buyer" in roles
    organization.is_seller = "seller" in roles
    organization.timezone = timezone_name
    organization.status = status
    if rate_limit_per_second is not None:
        organization.rate_limit_per_second = rate_limit_per_second
    organization.full_clean()
    organization.save()
    if not created:
        _organization_changed(organization)
    return organization, created


def _key_name_clean(name: str) -> str:
    name = name.strip()
    if not name:
        raise AccountsError("Give the key a name (what uses it, e.g. 'CRM sync').", field="name")
    if len(name) > ApiKey._meta.get_field("name").max_length:  # type: ignore[operator]
        raise AccountsError("Keep the name under 100 characters.", field="name")
    return name


def api_key_rename(*, actor: Membership, api_key_id: int, name: str) -> ApiKey:
    """Rename one of the actor's organization's keys (an owner; another organization's key is
    :class:`ApiKey.DoesNotExist`). The key's value does not change."""
    role_require(actor, "owner", organization_id=actor.organization_id)
    name = _key_name_clean(name)
    with market_scope(), transaction.atomic():
        key = ApiKey.objects.select_for_update().get(organization_id=actor.organization_id, pk=api_key_id)
        key.name = name
        key.save(update_fields=["name"])
    return key


def api_key_rotate(*, actor: Membership, api_key_id: int) -> tuple[ApiKey, str]:
    """Give an active key a new secret and return it with the raw value (shown once). The old
    value stops working at once: no grace period (docs/decisions.md), so whoever rotates a leaked
    key is sure it is dead; the name, scopes and history stay."""
    role_require(actor, "owner", organization_id=actor.organization_id)
    raw_key = api_key_generate()
    with market_scope(), transaction.atomic():
        key = ApiKey.objects.select_for_update().get(organization_id=actor.organization_id, pk=api_key_id)
        if key.revoked_at is not None:
            raise AccountsError("A revoked key cannot be rotated: create a new key instead.")
        old_digest = key.key_hash
        key.prefix = raw_key[:12]
        key.key_hash = api_key_hash(raw_key)
        key.rotated_at = timezone.now()
        key.last_used_at = None
        key.save(update_fields=["prefix", "key_hash", "rotated_at", "last_used_at"])
    cache.delete(api_key_cache_key(old_digest))
    return key, raw_key


def api_key_revoke_by_id(*, actor: Membership, api_key_id: int) -> ApiKey:
    """Revoke one of the actor's organization's keys (an owner; another's is ``DoesNotExist``)."""
    role_require(actor, "owner", organization_id=actor.organization_id)
    with market_scope():
        key = ApiKey.objects.get(organization_id=actor.organization_id, pk=api_key_id)
    return api_key_revoke(api_key=key, actor=actor)


# --- the team: invitations, roles, removal ------------------------------------------------------


class InvitationInvalid(AccountsError):
    """An invitation link that cannot be used: ``reason`` is unknown, expired, accepted or cancelled."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class InvitationSent:
    invitation: Invitation
    link: str  # the one-time link: in the email, and shown once to the owner who sent it
    emailed: bool  # False when the mail server refused it (the owner passes the link on)


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _email_clean(email: str) -> str:
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise AccountsError("Enter an email address such as jane@example.com.", field="email") from exc
    return email


def _role_clean(role: str) -> str:
    if role not in Membership.Role.values:
        raise AccountsError(f"Choose a role: {', '.join(Membership.Role.values)}.", field="role")
    return role


def invitation_create(*, actor: Membership, email: str, role: str, site_url: str) -> InvitationSent:
    """Invite ``email`` into the actor's organization with ``role`` (the actor: an owner) and email
    the one-time link. A newer invitation to the same address cancels its pending ones. Refused:
    an address that is already a member. The link is ``site_url`` + ``/invite/<token>/``; only the
    token's hash is stored. The mail goes out after the commit, outside the transaction."""
    role_require(actor, "owner", organization_id=actor.organization_id)
    email = _email_clean(email)
    role = _role_clean(role)
    token = secrets.token_urlsafe(32)
    organization = actor.organization
    with market_scope(), transaction.atomic():
        if Membership.objects.filter(organization_id=organization.pk, user__email=email).exists():
            raise AccountsError(f"{email} is already a member: change their role in the list below.", field="email")
        now = timezone.now()
        Invitation.objects.filter(
            organization_id=organization.pk, email=email, accepted_at__isnull=True, cancelled_at__isnull=True
        ).update(cancelled_at=now)
        invitation = Invitation.objects.create(
            organization=organization,
            email=email,
            role=role,
            token_hash=invitation_token_hash(token),
            invited_by_id=actor.user_id,
            created_at=now,
            expires_at=now + timedelta(days=settings.GAVEL_INVITATION_DAYS),
        )
    link = site_url.rstrip("/") + reverse("accounts:invite_accept", args=[token])
    context = {"invitation": invitation, "organization": organization, "link": link, "inviter": actor.user}
    try:
        send_mail(
            subject=f"Join {organization.name} on Gavel",
            message=render_to_string("accounts/invitation_email.txt", context),
            from_email=None,
            recipient_list=[email],
        )
        emailed = True
    except (OSError, smtplib.SMTPException):
        logger.exception("The invitation to %s could not be emailed", email)
        emailed = False
    return InvitationSent(invitation=invitation, link=link, emailed=emailed)


def invitation_cancel(*, actor: Membership, invitation_id: int) -> Invitation:
    """Cancel a pending invitation of the actor's organization (an owner): its link stops working.
    Another organization's invitation is ``Invitation.DoesNotExist``; cancelling twice is a no-op."""
    role_require(actor, "owner", organization_id=actor.organization_id)
    with market_scope():
        invitation = Invitation.objects.get(organization_id=actor.organization_id, pk=invitation_id)
        Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, cancelled_at__isnull=True).update(
            cancelled_at=timezone.now()
        )
        invitation.refresh_from_db()
    return invitation


def _invitation_usable(invitation: Invitation | None) -> Invitation:
    if invitation is None:
        raise InvitationInvalid(
            "unknown", "This invitation link is not valid. Check that you copied the whole link from the email."
        )
    state = invitation.state
    if state == "accepted":
        raise InvitationInvalid("accepted", "This invitation has already been used. Log in to reach your organization.")
    if state == "cancelled":
        raise InvitationInvalid(
            "cancelled",
            "This invitation was cancelled (or replaced by a newer one). Ask an owner for a new invitation.",
        )
    if state == "expired":
        raise InvitationInvalid(
            "expired", "This invitation has expired. Ask an owner of the organization to invite you again."
        )
    return invitation


def invitation_find(*, token: str) -> Invitation:
    """The pending invitation with this token, or :class:`InvitationInvalid` saying why not. The
    link's holder is not a member yet, so this reads across tenants, by the token's hash only."""
    if len(token) > 100:
        return _invitation_usable(None)
    with market_scope():
        invitation = (
            Invitation.objects.select_related("organization").filter(token_hash=invitation_token_hash(token)).first()
        )
    return _invitation_usable(invitation)


def invitation_accept(*, token: str, user: User | None = None, password: str = "", name: str = "") -> Membership:
    """Make the invitation's holder a member with its role, once. ``user``: the logged-in user,
    whose email must be the invited one; without one a new user is created with ``password``
    (validated by the caller's form) — an email that already has an account must log in first.
    Refused as a whole (nothing written) when the link is not usable or the person is a member."""
    with market_scope(), transaction.atomic():
        invitation = _invitation_usable(
            Invitation.objects.select_for_update()
            .select_related("organization")
            .filter(token_hash=invitation_token_hash(token))
            .first()
        )
        if user is None:
            if User.objects.filter(email=invitation.email).exists():
                raise AccountsError(f"{invitation.email} already has a Gavel account: log in to accept.")
            if not password:
                raise AccountsError("Choose a password.", field="password1")
            user = User.objects.create_user(invitation.email, password, name=name.strip())
        elif user.email.lower() != invitation.email:
            raise AccountsError(
                f"This invitation is for {invitation.email}, and you are logged in as {user.email}. "
                "Log out, then open the link again."
            )
        if Membership.objects.filter(user=user, organization_id=invitation.organization_id).exists():
            raise AccountsError(f"You are already a member of {invitation.organization.name}.")
        membership = Membership.objects.create(user=user, organization=invitation.organization, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def _owners_locked(organization_id: int) -> list[Membership]:
    """The organization's owners, locked in primary-key order: every change that could leave it
    without one takes these locks first, so two owners demoting each other cannot both succeed."""
    return list(
        Membership.objects.select_for_update()
        .filter(organization_id=organization_id, role=Membership.Role.OWNER)
        .order_by("pk")
    )


def _team_change_begin(actor: Membership, membership_id: int) -> tuple[list[Membership], Membership]:
    role_require(actor, "owner", organization_id=actor.organization_id)
    owners = _owners_locked(actor.organization_id)
    if actor.pk not in {o.pk for o in owners}:  # demoted or removed since the page was loaded
        raise RoleRefused("This needs the owner role (to manage the team and API keys).")
    target = (
        Membership.objects.select_for_update()
        .select_related("user")
        .get(organization_id=actor.organization_id, pk=membership_id)
    )
    return owners, target


def membership_role_change(*, actor: Membership, membership_id: int, role: str) -> Membership:
    """Give a member of the actor's organization another role (the actor: an owner). The last
    owner cannot be demoted; another organization's member is ``Membership.DoesNotExist``."""
    role = _role_clean(role)
    with transaction.atomic():
        owners, target = _team_change_begin(actor, membership_id)
        if target.role == Membership.Role.OWNER and role != Membership.Role.OWNER and len(owners) == 1:
            raise AccountsError(
                f"{target.user.email} is the last owner: make another member an owner first.", field="role"
            )
        target.role = role
        target.save(update_fields=["role"])
    return target


def membership_remove(*, actor: Membership, membership_id: int) -> Membership:
    """Remove a member from the actor's organization (the actor: an owner; an owner may remove
    themselves). The last owner cannot be removed. The organization's API keys are its own, not
    the member's: they keep working."""
    with transaction.atomic():
        owners, target = _team_change_begin(actor, membership_id)
        if target.role == Membership.Role.OWNER and len(owners) == 1:
            raise AccountsError(f"{target.user.email} is the last owner and cannot be removed.")
        target.delete()
    return target
