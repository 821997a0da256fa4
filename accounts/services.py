"""Writes for tenants and people. Each service owns its transaction."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Membership, Organization, User
from accounts.tenancy import market_scope
from core.cache import cache_get
from core.hooks import market_changed

API_KEY_PREFIX = "gvl_"
API_KEY_MIN_LENGTH = 20
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class AccountsError(Exception):
    """A request on tenants or people that cannot be carried out."""


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
        raise AccountsError(f"unknown scope '{unknown[0]}' (use {', '.join(ApiKey.Scope.values)})")
    return unique


def api_key_create(
    *, organization: Organization, name: str, scopes: Iterable[str], raw_key: str | None = None
) -> tuple[ApiKey, str]:
    """Create an API key and return it with its raw value, which is never stored nor shown again.

    ``raw_key`` fixes the value (tests, demo); it must start with ``gvl_`` and be long enough.
    """
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


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key at once; revoking twice keeps the first revocation time."""
    with market_scope():
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        api_key.refresh_from_db()
    cache.delete(api_key_cache_key(api_key.key_hash))
    return api_key


def api_key_scopes_set(*, api_key: ApiKey, scopes: Iterable[str]) -> ApiKey:
    """Give a live key exactly ``scopes``; requests made with it see them at once."""
    scopes = _scopes_check(scopes)
    with market_scope():
        ApiKey.objects.filter(pk=api_key.pk).update(scopes=scopes)
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


_ORG_FIELDS = ("slug", "name", "is_buyer", "is_seller", "timezone", "status")


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
    Organization.objects.filter(pk=organization.pk).update(status=status)
    organization.status = status
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
) -> tuple[Organization, bool]:
    """Create or update the organization with this slug; validated like a form."""
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
    organization.full_clean()
    organization.save()
    if not created:
        _organization_changed(organization)
    return organization, created
