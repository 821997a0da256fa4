"""The portal shell: login, logout, organization switcher and the home page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.middleware import SESSION_ORGANIZATION_KEY
from accounts.selectors import api_keys_of, memberships_of


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


@login_required
def home(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    if organization is None:
        return render(request, "accounts/no_organization.html", status=403)
    return render(request, "accounts/home.html", {"api_keys": api_keys_of(organization=organization)})


@login_required
@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    """Make another of the user's organizations the current one (a foreign one is a 404)."""
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError as exc:
        raise Http404("No such organization.") from exc
    if not memberships_of(user=request.user).filter(organization_id=organization_id).exists():  # type: ignore[arg-type]
        raise Http404("No such organization.")
    request.session[SESSION_ORGANIZATION_KEY] = organization_id
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("accounts:home")
    return HttpResponseRedirect(target)


def root(request: HttpRequest) -> HttpResponse:
    return redirect("accounts:home")


# --- webhooks ---------------------------------------------------------------------------------
# Imports stay inside the views: accounts is below exchange, and only these pages need it.


def _webhooks_page(request: HttpRequest, *, status: int = 200, **extra: object) -> HttpResponse:
    from exchange.webhooks import EventType, deliveries_of, endpoints_of

    organization = request.organization  # type: ignore[attr-defined]
    context = {
        "endpoints": endpoints_of(organization=organization),
        "deliveries": deliveries_of(organization=organization, limit=100),
        "event_types": EventType.choices,
        "can_manage": request.membership.can_manage,  # type: ignore[attr-defined]
        **extra,
    }
    return render(request, "accounts/webhooks.html", context, status=status)


def _webhooks_guard(request: HttpRequest) -> HttpResponse | None:
    """No organization → the same 403 page as home; a change by an analyst → 403."""
    from django.core.exceptions import PermissionDenied

    if request.organization is None:  # type: ignore[attr-defined]
        return render(request, "accounts/no_organization.html", status=403)
    if request.method == "POST" and not request.membership.can_manage:  # type: ignore[attr-defined]
        raise PermissionDenied("Only owners and managers change webhooks.")
    return None


@login_required
def webhooks(request: HttpRequest) -> HttpResponse:
    """The organization's endpoints and delivery log; POST adds an endpoint and shows its secret once."""
    from exchange.webhooks import WebhookError, endpoint_create

    if (refused := _webhooks_guard(request)) is not None:
        return refused
    if request.method != "POST":
        return _webhooks_page(request)
    url = request.POST.get("url", "")
    event_types = request.POST.getlist("event_types")
    try:
        endpoint, secret = endpoint_create(
            organization=request.organization,  # type: ignore[attr-defined]
            url=url,
            event_types=event_types,
        )
    except WebhookError as exc:
        return _webhooks_page(request, status=422, error=exc.message, form_url=url, form_types=event_types)
    # Rendered, not redirected: the secret must not travel through the session or a cookie.
    return _webhooks_page(request, new_secret=secret, new_secret_endpoint=endpoint)


@login_required
@require_POST
def webhook_endpoint_action(request: HttpRequest, public_id: str, action: str) -> HttpResponse:
    """Disable, enable or rotate the secret of one of the organization's endpoints (another's is a 404)."""
    from exchange.outbound import UnsafeUrl
    from exchange.webhooks import (
        WebhookEndpoint,
        endpoint_disable,
        endpoint_enable,
        endpoint_get,
        endpoint_secret_rotate,
    )

    if (refused := _webhooks_guard(request)) is not None:
        return refused
    try:
        endpoint = endpoint_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    except WebhookEndpoint.DoesNotExist as exc:
        raise Http404("No such endpoint.") from exc
    if action == "disable":
        endpoint_disable(endpoint=endpoint)
    elif action == "enable":
        try:
            endpoint_enable(endpoint=endpoint)
        except UnsafeUrl as exc:
            return _webhooks_page(request, status=422, error=str(exc))
    elif action == "rotate":
        secret = endpoint_secret_rotate(endpoint=endpoint)
        return _webhooks_page(request, new_secret=secret, new_secret_endpoint=endpoint, rotated=True)
    else:
        raise Http404("No such action.")
    return redirect("accounts:webhooks")


@login_required
@require_POST
def webhook_delivery_replay(request: HttpRequest, public_id: str) -> HttpResponse:
    """Send a given-up delivery again (another organization's is a 404)."""
    from exchange.webhooks import EventDelivery, WebhookError, delivery_get, delivery_replay

    if (refused := _webhooks_guard(request)) is not None:
        return refused
    try:
        delivery = delivery_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    except EventDelivery.DoesNotExist as exc:
        raise Http404("No such delivery.") from exc
    try:
        delivery_replay(delivery=delivery)
    except WebhookError as exc:
        return _webhooks_page(request, status=409, error=exc.message)
    return redirect("accounts:webhooks")
