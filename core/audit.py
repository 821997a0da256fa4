"""The audit trail's shared plumbing (django-auditlog, decision 52): who is acting, and a record of
the writes auditlog's signals cannot see.

auditlog records every save and delete of the models each owning app registers in its
``AppConfig.ready`` (:func:`audit_register`). *Who* comes from the context set here: the request
middleware (``accounts.middleware.AuditContextMiddleware``: the logged-in user, the source
``portal`` / ``admin`` / ``api``), the API-key authentication (``accounts.api.base``: the key), the
market loader (``market``); anything else (Celery tasks, the circuit breaker) is ``system``.

Services that write with a queryset ``update()`` (a compare-and-set) or book append-only money
(the ledger) call :func:`audit_record` in the same transaction, with what changed, before and
after. Consumer PII never reaches an entry: :func:`audit_mask` masks emails and phone numbers in
everything recorded (the entry model applies it to every entry, auditlog's included).

This module imports no app: the entry model (``accounts.AuditEntry``) is reached through
auditlog's ``get_logentry_model``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from auditlog import get_logentry_model
from auditlog.registry import auditlog
from django.db import models

__all__ = [
    "AuditContext",
    "audit_access",
    "audit_context",
    "audit_context_current",
    "audit_context_update",
    "audit_mask",
    "audit_record",
    "audit_register",
]

# What every audited model leaves out: bookkeeping that changes on every save.
ALWAYS_EXCLUDED = ("updated_at",)


@dataclass(frozen=True)
class AuditContext:
    """Who acts: a user (``actor_id``), an API key (``api_key_id``), or neither (the system)."""

    source: str = "system"  # portal, admin, api, market or system
    actor_id: int | None = None
    actor_email: str | None = None
    api_key_id: int | None = None
    remote_addr: str | None = None


_context: ContextVar[AuditContext] = ContextVar("gavel_audit_context", default=AuditContext())  # noqa: B039


def audit_context_current() -> AuditContext:
    return _context.get()


@contextmanager
def audit_context(**values: Any) -> Iterator[AuditContext]:
    """Act as ``values`` (AuditContext fields) inside the block; nests, and restores on exit."""
    token = _context.set(replace(_context.get(), **values))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def audit_context_update(**values: Any) -> None:
    """Name more of who acts for the rest of the current block (the API key, once authenticated).

    Only inside an :func:`audit_context` block (the request middleware's), which restores it."""
    _context.set(replace(_context.get(), **values))


# --- masking consumer PII ---------------------------------------------------------------------------

_EMAIL = re.compile(r"([A-Za-z0-9._%+'-])[A-Za-z0-9._%+'-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# E.164 (+ and 8 to 15 digits, spaces or dashes allowed) and the North American forms
# (415) 555-0123, 415-555-0123, 415.555.0123. Dates and amounts do not match either.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d \-().]{6,18}\d|\(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4})\b")


def _phone_mask(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "•••" + digits[-2:]


def audit_mask(value: Any) -> Any:
    """``value`` with every email (``j•••@example.com``) and phone number (``•••23``) masked,
    through strings, lists and dicts."""
    if isinstance(value, str):
        return _PHONE.sub(_phone_mask, _EMAIL.sub(r"\1•••@\2", value))
    if isinstance(value, list | tuple):
        return [audit_mask(v) for v in value]
    if isinstance(value, dict):
        return {k: audit_mask(v) for k, v in value.items()}
    return value


# --- registering and recording ----------------------------------------------------------------------


def audit_register(
    model: type[models.Model], *, exclude: Iterable[str] = (), mask: Iterable[str] = (), m2m: Iterable[str] = ()
) -> None:
    """Record every save and delete of ``model`` (called by its owning app's ``ready``).

    ``exclude``: fields never recorded (secrets, hashes); ``mask``: fields recorded masked
    (auditlog keeps their last characters); ``m2m``: many-to-many fields recorded as added/removed.
    """
    excluded = {*ALWAYS_EXCLUDED, *exclude, model._meta.pk.name}  # the entry names the row already
    auditlog.register(
        model,
        # Its own columns only: auditlog would list reverse relations (a new organization's
        # "pings", "sales"…) as changes.
        include_fields=[f.name for f in model._meta.concrete_fields if f.name not in excluded],
        exclude_fields=sorted(excluded),
        mask_fields=list(mask),
        m2m_fields=set(m2m),
    )


def _text(value: Any) -> str:
    return "None" if value is None else str(value)


def audit_record(
    instance: models.Model,
    *,
    changes: dict[str, tuple[Any, Any]],
    action: str = "update",
    note: str = "",
) -> Any:
    """Record a write auditlog cannot see: ``changes`` is ``{field: (before, after)}`` (a creation:
    before None). ``action``: create, update or delete. Call it in the write's transaction, so the
    entry and the change commit together. Returns the entry."""
    entry_model = get_logentry_model()
    actions = {"create": entry_model.Action.CREATE, "update": entry_model.Action.UPDATE}
    actions["delete"] = entry_model.Action.DELETE
    return entry_model.objects.log_create(
        instance,
        force_log=True,
        action=actions[action],
        changes={field: [_text(before), _text(after)] for field, (before, after) in changes.items()},
        additional_data={"note": note} if note else None,
    )


def audit_access(instance: models.Model, *, what: str) -> Any:
    """Record that the current actor saw ``what`` of ``instance`` (e.g. a lead's decrypted PII)."""
    entry_model = get_logentry_model()
    return entry_model.objects.log_create(
        instance, force_log=True, action=entry_model.Action.ACCESS, changes=None, additional_data={"viewed": what}
    )
