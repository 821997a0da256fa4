from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.lockout import login_unlock
from accounts.models import ApiKey, AuditEntry, Invitation, Membership, Organization, User
from accounts.services import api_key_create, api_key_revoke, api_keys_forget
from core.admin import BookInvalidatingAdmin, ReadOnlyAdminMixin, when


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["email", "name"]
    fieldsets = (
        (None, {"fields": ("email", "password", "name")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    actions = ["unlock_sign_in"]

    @admin.action(description="Unlock sign-in (forget failed attempts)")
    def unlock_sign_in(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        unlocked = [user.email for user in queryset if login_unlock(email=user.email)]
        if unlocked:
            messages.success(request, f"Unlocked: {', '.join(unlocked)}. They can sign in again now.")
        else:
            messages.info(request, "None of the selected users had failed sign-ins to forget.")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "scopes", "last_used_at", "revoked_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(BookInvalidatingAdmin):
    list_display = ["name", "slug", "is_buyer", "is_seller", "timezone", "status", "created_at"]
    list_filter = ["status", "is_buyer", "is_seller", "timezone"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ("name",)}
    fields = ["name", "slug", "is_buyer", "is_seller", "timezone", "status", "rate_limit_per_second", "created_at"]
    readonly_fields = ["created_at"]  # the signing secret is never shown here: the portal rotates it
    # The apps above add their inlines by extending this admin (contracts.admin: contracts, campaigns).
    inlines = [MembershipInline, ApiKeyInline]

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            api_keys_forget(organization=obj)  # a suspension, a new role or rate limit applies to the API at once


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__name"]
    readonly_fields = ["prefix", "created_at", "rotated_at", "last_used_at", "revoked_at"]
    fields = ["organization", "name", "scopes", "prefix", "created_at", "rotated_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = api_key_create(organization=obj.organization, name=obj.name, scopes=obj.scopes or [])
        obj.pk = key.pk
        messages.warning(request, f"The new key is {raw} — copy it now: it is never shown again.")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(api_key=key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """What owners sent from the team page: for the operator to look up, not to edit (the token
    exists only as its hash)."""

    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at", "cancelled_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False


# auditlog registers its own admin for the entry model; the exchange's shows who and the organization.
if admin.site.is_registered(AuditEntry):
    admin.site.unregister(AuditEntry)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """The whole exchange's audit trail (each organization sees its own in the portal)."""

    list_display = ["at", "who", "source", "action", "kind", "object_repr", "organization", "changed"]
    list_filter = ["action", "source", "content_type", "organization"]
    list_select_related = ["content_type", "organization", "api_key"]
    search_fields = ["object_repr", "actor_email", "=object_pk"]
    search_help_text = "Search by what was changed (its name or id) or by the actor's email."
    date_hierarchy = "timestamp"
    show_full_result_count = False
    fields = ["at", "who", "source", "remote_addr", "action", "kind", "object_repr", "organization", "changed"]
    readonly_fields = fields  # type: ignore[assignment]

    @admin.display(description="when", ordering="timestamp")
    def at(self, obj: AuditEntry) -> str:
        return when(obj.timestamp)

    @admin.display(description="what")
    def kind(self, obj: AuditEntry) -> str:
        return obj.kind

    @admin.display(description="changes")
    def changed(self, obj: AuditEntry) -> SafeString | str:
        rows = obj.change_rows
        if not rows:
            return "—"
        lines = format_html_join("", "<tr><th>{}</th><td>{}</td><td>→ {}</td></tr>", rows)
        return format_html("<table>{}</table>", lines)
