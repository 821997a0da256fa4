"""The public privacy request page ``/privacy/`` (no login): a consumer asks for their data to be
deleted or for a copy of it, and confirms by the link emailed to them (:mod:`leads.privacy`).

Bots: a honeypot field (``website``, hidden from people) makes a submission do nothing while it
looks accepted, and each client address may file :data:`RATE_LIMIT` requests per
:data:`RATE_WINDOW_SECONDS` (then a 429 page). The confirmation link is opened with GET, which only
shows a button: mail scanners that prefetch links must not confirm on the consumer's behalf.
"""

from __future__ import annotations

from django import forms
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.errors import ExchangeError
from leads.models import PrivacyRequest
from leads.privacy import TOKEN_TTL, privacy_request_confirm_token, privacy_request_file_public

RATE_LIMIT = 5
RATE_WINDOW_SECONDS = 3600


class PrivacyRequestForm(forms.Form):
    kind = forms.ChoiceField(
        label="What would you like us to do?",
        choices=[
            ("delete", "Delete my personal data"),
            ("access", "Send me a copy of my personal data"),
        ],
        widget=forms.RadioSelect,
        initial="delete",
    )
    email = forms.EmailField(
        label="Your email address",
        help_text="We send a confirmation link here; nothing happens until you open it.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    phone = forms.CharField(
        label="Your phone number (optional, deletion only)",
        required=False,
        help_text="Add it to also delete what was sent with your phone number.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )
    website = forms.CharField(required=False, label="Leave this empty")  # the honeypot


def _client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


def _rate_limited(request: HttpRequest) -> bool:
    key = f"privacy:ip:{_client_ip(request)}"
    cache.add(key, 0, RATE_WINDOW_SECONDS)
    try:
        return cache.incr(key) > RATE_LIMIT
    except ValueError:  # expired between add and incr
        cache.set(key, 1, RATE_WINDOW_SECONDS)
        return False


@require_http_methods(["GET", "POST"])
def privacy_request_page(request: HttpRequest) -> HttpResponse:
    form = PrivacyRequestForm(request.POST or None)
    context = {"form": form, "hours": int(TOKEN_TTL.total_seconds() // 3600)}
    if request.method != "POST":
        return render(request, "leads/privacy_request.html", context)
    if _rate_limited(request):
        context["error"] = "Too many requests from your network. Please try again in an hour."
        return render(request, "leads/privacy_request.html", context, status=429)
    if not form.is_valid():
        return render(request, "leads/privacy_request.html", context, status=422)
    if form.cleaned_data["website"]:  # a bot filled the hidden field: answer as usual, do nothing
        return render(request, "leads/privacy_sent.html", {**context, "email": form.cleaned_data["email"]})
    try:
        privacy_request_file_public(
            kind=form.cleaned_data["kind"],
            email=form.cleaned_data["email"],
            phone=form.cleaned_data["phone"],
            link=lambda token: request.build_absolute_uri(reverse("privacy-confirm", args=[token])),
        )
    except ExchangeError as exc:
        for name, messages in (exc.fields or {}).items():
            for message in messages:
                form.add_error(name if name in form.fields else None, message)
        if not exc.fields:
            form.add_error(None, exc.message)
        return render(request, "leads/privacy_request.html", context, status=422)
    return render(request, "leads/privacy_sent.html", {**context, "email": form.cleaned_data["email"]})


@require_http_methods(["GET", "POST"])
def privacy_confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return render(request, "leads/privacy_confirm.html", {"token": token})
    try:
        confirmed = privacy_request_confirm_token(token=token)
    except ExchangeError as exc:
        return render(request, "leads/privacy_confirm.html", {"error": exc.message}, status=exc.status)
    return render(
        request,
        "leads/privacy_confirm.html",
        {"confirmed": confirmed, "deletion": confirmed.kind == PrivacyRequest.Kind.DELETE},
    )
