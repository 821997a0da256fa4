"""The portal shell (login, logout, organization switcher, home), the team page with its
invitations, and the API-key page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.forms import (
    ROLE_HELP,
    AcceptForm,
    AuditFilterForm,
    InviteForm,
    KeyCreateForm,
    KeyRenameForm,
    RoleForm,
    service_error_show,
)
from accounts.middleware import SESSION_ORGANIZATION_KEY
from accounts.models import ApiKey, Invitation, Membership, Organization, User
from accounts.portal import portal_page, role_allows, role_refused_page
from accounts.selectors import api_keys_of, audit_entries_of, invitations_pending_of, members_of, memberships_of
from accounts.services import (
    AccountsError,
    InvitationInvalid,
    InvitationSent,
    api_key_create,
    api_key_rename,
    api_key_revoke_by_id,
    api_key_rotate,
    invitation_accept,
    invitation_cancel,
    invitation_create,
    invitation_find,
    membership_remove,
    membership_role_change,
)


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
    active_keys = api_keys_of(organization=organization).filter(revoked_at__isnull=True)
    return render(request, "accounts/home.html", {"api_keys": active_keys})


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


# --- the team ------------------------------------------------------------------------------------


def _actor(request: HttpRequest) -> Membership:
    return request.membership  # type: ignore[attr-defined,no-any-return]


def _team_page(
    request: HttpRequest,
    *,
    status: int = 200,
    invite_form: InviteForm | None = None,
    sent: InvitationSent | None = None,
    row_error: tuple[int, str] | None = None,
) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    members = list(members_of(organization=organization))
    context = {
        "members": members,
        "owner_count": sum(m.role == Membership.Role.OWNER for m in members),
        "invitations": invitations_pending_of(organization=organization),
        "is_owner": role_allows(_actor(request), "owner"),
        "invite_form": invite_form or InviteForm(),
        "sent": sent,
        "row_error": row_error,
        "roles": Membership.Role.choices,
        "roles_described": [(r.label, ROLE_HELP[r.value]) for r in Membership.Role],
    }
    response = render(request, "accounts/team.html", context, status=status)
    if sent is not None:
        response["Cache-Control"] = "no-store"  # the one-time link is on this page
    return response


@portal_page()
def team(request: HttpRequest) -> HttpResponse:
    """The organization's members and pending invitations; an owner invites (POST)."""
    if request.method != "POST":
        return _team_page(request)
    if not role_allows(_actor(request), "owner"):
        return role_refused_page(request, "owner")
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _team_page(request, status=400, invite_form=form)
    try:
        sent = invitation_create(
            actor=_actor(request),
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            site_url=request.build_absolute_uri("/"),
        )
    except AccountsError as exc:
        service_error_show(form, exc)
        return _team_page(request, status=400, invite_form=form)
    # Rendered, not redirected: the link is shown once, and never kept in the session.
    return _team_page(request, sent=sent)


@require_POST
@portal_page(role="owner")
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _team_page(request, status=400, row_error=(membership_id, "Choose a role."))
    try:
        changed = membership_role_change(
            actor=_actor(request), membership_id=membership_id, role=form.cleaned_data["role"]
        )
    except Membership.DoesNotExist as exc:
        raise Http404("No such member.") from exc
    except AccountsError as exc:
        return _team_page(request, status=409, row_error=(membership_id, exc.message))
    messages.success(request, f"{changed.user.email} is now {changed.get_role_display().lower()}.")
    return redirect("accounts:team")


@require_POST
@portal_page(role="owner")
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    try:
        removed = membership_remove(actor=_actor(request), membership_id=membership_id)
    except Membership.DoesNotExist as exc:
        raise Http404("No such member.") from exc
    except AccountsError as exc:
        return _team_page(request, status=409, row_error=(membership_id, exc.message))
    messages.success(request, f"{removed.user.email} is no longer a member of {request.organization.name}.")  # type: ignore[attr-defined]
    if removed.pk == _actor(request).pk:
        return redirect("accounts:home")
    return redirect("accounts:team")


@require_POST
@portal_page(role="owner")
def invitation_cancel_view(request: HttpRequest, invitation_id: int) -> HttpResponse:
    try:
        cancelled = invitation_cancel(actor=_actor(request), invitation_id=invitation_id)
    except Invitation.DoesNotExist as exc:
        raise Http404("No such invitation.") from exc
    messages.success(request, f"The invitation to {cancelled.email} is cancelled: its link no longer works.")
    return redirect("accounts:team")


def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """``/invite/<token>/``: a new user sets a password, a logged-in one confirms; either way they
    become a member with the invitation's role. A link that cannot be used says why."""
    try:
        invitation = invitation_find(token=token)
    except InvitationInvalid as exc:
        status = 404 if exc.reason == "unknown" else 410
        return render(
            request, "accounts/invite_invalid.html", {"reason": exc.reason, "message": exc.message}, status=status
        )
    user = request.user if request.user.is_authenticated else None
    has_account = user is None and User.objects.filter(email=invitation.email).exists()
    form = AcceptForm(request.POST or None, email=invitation.email) if user is None and not has_account else None
    error = ""
    if request.method == "POST" and not has_account:
        if form is None or form.is_valid():
            try:
                membership = invitation_accept(
                    token=token,
                    user=user,  # type: ignore[arg-type]
                    password=form.cleaned_data["password1"] if form else "",
                    name=form.cleaned_data["name"] if form else "",
                )
            except InvitationInvalid as exc:
                return render(
                    request, "accounts/invite_invalid.html", {"reason": exc.reason, "message": exc.message}, status=410
                )
            except AccountsError as exc:
                if form is not None:
                    service_error_show(form, exc)
                else:
                    error = exc.message
            else:
                if user is None:
                    login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
                request.session[SESSION_ORGANIZATION_KEY] = membership.organization_id
                role = membership.get_role_display().lower()
                messages.success(request, f"Welcome to {membership.organization.name}: you are a member as {role}.")
                return redirect("accounts:home")
    mismatch = user is not None and user.email.lower() != invitation.email  # type: ignore[union-attr]
    context = {
        "invitation": invitation,
        "form": form,
        "has_account": has_account,
        "mismatch": mismatch,
        "error": error,
        "role_help": ROLE_HELP,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/invite_accept.html", context, status=status)


# --- API keys ------------------------------------------------------------------------------------


def _allowed_scopes(organization: Organization) -> list[str]:
    """The scopes a key of this organization can use: its sides' endpoints and the reports."""
    allowed = []
    if organization.is_seller:
        allowed.append(ApiKey.Scope.LEADS.value)
    if organization.is_buyer:
        allowed += [ApiKey.Scope.PURCHASES.value, ApiKey.Scope.CONTRACTS.value]
    allowed.append(ApiKey.Scope.REPORTS.value)
    return allowed


def _keys_page(
    request: HttpRequest,
    *,
    status: int = 200,
    create_form: KeyCreateForm | None = None,
    new_key: ApiKey | None = None,
    new_secret: str = "",
    rotated: bool = False,
    row_error: tuple[int, str] | None = None,
) -> HttpResponse:
    organization: Organization = request.organization  # type: ignore[attr-defined]
    context = {
        "api_keys": api_keys_of(organization=organization),
        "is_owner": role_allows(_actor(request), "owner"),
        "create_form": create_form or KeyCreateForm(allowed_scopes=_allowed_scopes(organization)),
        "new_key": new_key,
        "new_secret": new_secret,
        "rotated": rotated,
        "row_error": row_error,
        "scope_labels": dict(ApiKey.Scope.choices),
    }
    response = render(request, "accounts/keys.html", context, status=status)
    if new_secret:
        response["Cache-Control"] = "no-store"  # the key's only showing
    return response


@portal_page()
def keys(request: HttpRequest) -> HttpResponse:
    """The organization's API keys; an owner creates one (POST), shown once on the answer."""
    if request.method != "POST":
        return _keys_page(request)
    if not role_allows(_actor(request), "owner"):
        return role_refused_page(request, "owner")
    organization: Organization = request.organization  # type: ignore[attr-defined]
    form = KeyCreateForm(request.POST, allowed_scopes=_allowed_scopes(organization))
    if not form.is_valid():
        return _keys_page(request, status=400, create_form=form)
    try:
        key, raw = api_key_create(
            organization=organization,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            actor=_actor(request),
        )
    except AccountsError as exc:
        service_error_show(form, exc)
        return _keys_page(request, status=400, create_form=form)
    # Rendered, not redirected: the raw key is never kept in the session.
    return _keys_page(request, new_key=key, new_secret=raw)


@require_POST
@portal_page(role="owner")
def key_action(request: HttpRequest, key_id: int, action: str) -> HttpResponse:
    """Rename, rotate or revoke one of the organization's keys (another organization's is a 404)."""
    actor = _actor(request)
    try:
        if action == "rename":
            form = KeyRenameForm(request.POST)
            if not form.is_valid():
                return _keys_page(
                    request, status=400, row_error=(key_id, "Give the key a name (up to 100 characters).")
                )
            key = api_key_rename(actor=actor, api_key_id=key_id, name=form.cleaned_data["name"])
            messages.success(request, f"Renamed to “{key.name}”.")
        elif action == "rotate":
            key, raw = api_key_rotate(actor=actor, api_key_id=key_id)
            return _keys_page(request, new_key=key, new_secret=raw, rotated=True)
        elif action == "revoke":
            key = api_key_revoke_by_id(actor=actor, api_key_id=key_id)
            messages.success(
                request, f"“{key.name}” ({key.prefix}…) is revoked: calls with it are refused from now on."
            )
        else:
            raise Http404("No such action.")
    except ApiKey.DoesNotExist as exc:
        raise Http404("No such key.") from exc
    except AccountsError as exc:
        return _keys_page(request, status=409, row_error=(key_id, exc.message))
    return redirect("accounts:keys")


# --- the audit trail -----------------------------------------------------------------------------

AUDIT_PAGE_SIZE = 50


@portal_page(role="manager")
def audit_trail(request: HttpRequest) -> HttpResponse:
    """The organization's own audit trail: who changed what, before and after, newest first."""
    organization: Organization = request.organization  # type: ignore[attr-defined]
    form = AuditFilterForm(request.GET, tz=organization.tz)
    valid = form.is_valid()
    if valid:
        since, until = form.bounds()
        entries = audit_entries_of(organization=organization, kind=form.cleaned_data["kind"], since=since, until=until)
    else:
        entries = audit_entries_of(organization=organization).none()
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/audit.html", {"page": page, "form": form}, status=200 if valid else 400)
