"""The portal's webhook pages: an organization's endpoints, its delivery log, replays, and (for a
buyer) the secret that signs its RTB and delivery requests. Every member reads them; changing an
endpoint or replaying a delivery needs a manager (``portal_page``, and again in each service)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.portal import portal_page, role_allows, role_refused_page
from core.outbound import UnsafeUrl
from exchange.webhooks.models import EventDelivery, EventType, WebhookEndpoint
from exchange.webhooks.selectors import deliveries_of, delivery_get, endpoint_get, endpoints_of
from exchange.webhooks.services import (
    WebhookError,
    delivery_replay,
    endpoint_create,
    endpoint_disable,
    endpoint_enable,
    endpoint_secret_rotate,
)


def _webhooks_page(request: HttpRequest, *, status: int = 200, **extra: object) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    context = {
        "endpoints": endpoints_of(organization=organization),
        "deliveries": deliveries_of(organization=organization, limit=100),
        "event_types": EventType.choices,
        "can_manage": role_allows(request.membership, "manager"),  # type: ignore[attr-defined]
        **extra,
    }
    return render(request, "exchange/webhooks.html", context, status=status)


@portal_page()
def webhooks(request: HttpRequest) -> HttpResponse:
    """The organization's endpoints and delivery log; POST adds an endpoint and shows its secret once."""
    if request.method != "POST":
        return _webhooks_page(request)
    if not role_allows(request.membership, "manager"):  # type: ignore[attr-defined]
        return role_refused_page(request, "manager")
    url = request.POST.get("url", "")
    event_types = request.POST.getlist("event_types")
    try:
        endpoint, secret = endpoint_create(
            organization=request.organization,  # type: ignore[attr-defined]
            url=url,
            event_types=event_types,
            actor=request.membership,  # type: ignore[attr-defined]
        )
    except WebhookError as exc:
        return _webhooks_page(request, status=422, error=exc.message, form_url=url, form_types=event_types)
    # Rendered, not redirected: the secret must not travel through the session or a cookie.
    return _webhooks_page(request, new_secret=secret, new_secret_endpoint=endpoint)


@require_POST
@portal_page(role="manager")
def webhook_endpoint_action(request: HttpRequest, public_id: str, action: str) -> HttpResponse:
    """Disable, enable or rotate the secret of one of the organization's endpoints (another's is a 404)."""
    actor = request.membership  # type: ignore[attr-defined]
    try:
        endpoint = endpoint_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    except WebhookEndpoint.DoesNotExist as exc:
        raise Http404("No such endpoint.") from exc
    if action == "disable":
        endpoint_disable(endpoint=endpoint, actor=actor)
    elif action == "enable":
        try:
            endpoint_enable(endpoint=endpoint, actor=actor)
        except UnsafeUrl as exc:
            return _webhooks_page(request, status=422, error=str(exc))
    elif action == "rotate":
        secret = endpoint_secret_rotate(endpoint=endpoint, actor=actor)
        return _webhooks_page(request, new_secret=secret, new_secret_endpoint=endpoint, rotated=True)
    else:
        raise Http404("No such action.")
    return redirect("exchange:webhooks")


@require_POST
@portal_page(role="manager")
def webhook_delivery_replay(request: HttpRequest, public_id: str) -> HttpResponse:
    """Send a given-up delivery again (another organization's is a 404)."""
    try:
        delivery = delivery_get(organization=request.organization, public_id=public_id)  # type: ignore[attr-defined]
    except EventDelivery.DoesNotExist as exc:
        raise Http404("No such delivery.") from exc
    try:
        delivery_replay(delivery=delivery, actor=request.membership)  # type: ignore[attr-defined]
    except WebhookError as exc:
        return _webhooks_page(request, status=409, error=exc.message)
    return redirect("exchange:webhooks")
