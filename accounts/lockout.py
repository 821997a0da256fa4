"""Sign-in lockout (django-axes): five failed sign-ins for one account lock it for fifteen minutes,
on the portal's login and the admin's alike (DESIGN.md §6.1; docs/decisions.md).

Counted per account (the email typed, trimmed and lower-cased as accounts are stored), not per
address, so a guesser spreading over many addresses is stopped all the same. Attempts live in
axes' tables (shared by every web node); an operator unlocks an account from the admin (the
"Unlock sign-in" action on users, or axes' own "Access attempts").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def lockout_username(request: HttpRequest | None, credentials: dict[str, Any] | None = None) -> str:
    """The account a sign-in is for, as accounts are stored: ``Owner@Acme.test `` is
    ``owner@acme.test``."""
    value = (credentials or {}).get("username")
    if value is None and request is not None:
        value = request.POST.get("username")
    return str(value or "").strip().lower()


class LoginLockoutBackend(AxesStandaloneBackend):
    """Refuses a locked account before any password is checked (listed before ModelBackend).

    A sign-in without a request — the test client's ``login``, a shell's ``authenticate`` — is not
    an HTTP sign-in anyone could repeat from outside: it is let through to the next backend."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)  # type: ignore[arg-type]
        return None


def lockout_until(username: str) -> Any:
    """When the account's lock ends (its last failed attempt plus the cool-off), or None."""
    cooloff: timedelta = settings.AXES_COOLOFF_TIME
    last = AccessAttempt.objects.filter(username=username).order_by("-attempt_time").first()
    return None if last is None else last.attempt_time + cooloff


def login_locked(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The page a locked account's sign-in gets (429): when to retry, and who can unlock it sooner."""
    username = lockout_username(request, credentials)
    until = lockout_until(username) or timezone.now() + settings.AXES_COOLOFF_TIME
    context = {
        "username": username,
        "until": timezone.localtime(until),
        "minutes": max(1, round((until - timezone.now()).total_seconds() / 60)),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "admin": request.path.startswith("/admin/"),
    }
    return render(request, "accounts/login_locked.html", context, status=429)


def login_unlock(*, email: str) -> bool:
    """Forget the account's failed sign-ins, which ends its lock at once; whether it had any."""
    return bool(reset(username=email.strip().lower()))
