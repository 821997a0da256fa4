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
