"""Forms of the team and API-key pages: they check the shape of what was typed; the services
(accounts.services) decide, and their refusals come back as errors on the field they name."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django import forms
from django.contrib.auth import password_validation

from accounts.models import AUDIT_KINDS, ApiKey, Membership, User
from accounts.services import AccountsError

ROLE_HELP = {
    "owner": "does everything, including the team and API keys",
    "manager": "changes contracts, campaigns, billing alerts and webhooks",
    "analyst": "reads everything, changes nothing",
}
SCOPE_HELP = {
    "leads": "send pings, posts and full leads (sellers)",
    "purchases": "read purchases and return leads (buyers)",
    "contracts": "read and change contracts (buyers)",
    "reports": "read reports",
}


def service_error_show(form: forms.Form, exc: AccountsError) -> None:
    """Put a service's refusal on the field it names (or on the form as a whole)."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, exc.message)


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    role = forms.ChoiceField(
        label="Role",
        choices=[(r.value, f"{r.label} — {ROLE_HELP[r.value]}") for r in Membership.Role],
        initial=Membership.Role.ANALYST,
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)


class AcceptForm(forms.Form):
    """A new member's account: a name and a password typed twice (Django's password rules)."""

    name = forms.CharField(label="Your name", max_length=150, required=False)
    password1 = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: object, email: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.email = email

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        one, two = cleaned.get("password1"), cleaned.get("password2")
        if one and two and one != two:
            self.add_error("password2", "The two passwords differ.")
        elif one:
            try:
                password_validation.validate_password(str(one), User(email=self.email))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class KeyCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="What uses it, e.g. “CRM sync”.")
    scopes = forms.MultipleChoiceField(
        label="Scopes", widget=forms.CheckboxSelectMultiple, error_messages={"required": "Choose at least one scope."}
    )

    def __init__(self, *args: object, allowed_scopes: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["scopes"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(s, f"{ApiKey.Scope(s).label} — {SCOPE_HELP[s]}") for s in allowed_scopes]


class KeyRenameForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100)


# The kinds an organization's trail can show (offers are the exchange's: operators only).
TRAIL_KINDS = [(key, label) for key, (label, _) in AUDIT_KINDS.items() if key != "offer"]


class AuditFilterForm(forms.Form):
    """The trail's filters: the kind of thing, and days (from, to: both included) in ``tz``."""

    kind = forms.ChoiceField(label="What", choices=[("", "Everything"), *TRAIL_KINDS], required=False)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, tz: zoneinfo.ZoneInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tz = tz

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” must be on or before “To”.")
        return cleaned

    @property
    def active(self) -> bool:
        return any(self.data.get(name) for name in ("kind", "since", "until"))

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The days as times: from the start of ``since`` to the end of ``until``, in the zone."""
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        start = dt.datetime.combine(since, dt.time(), tzinfo=self.tz) if since else None
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tzinfo=self.tz) if until else None
        return start, end
