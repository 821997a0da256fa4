"""The operator's view of leads, their consent and the opt-out list.

Leads and consent records are history: read-only here. A suppression is added by typing the
consumer's email or phone; only its hash is stored (``core.pii``), never the raw value.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.admin import ReadOnlyAdminMixin, SellerFilter, when
from core.audit import audit_access
from core.pii import PiiInvalid, email_hash, phone_hash
from leads.crypto import PiiKeyError, pii_decrypt
from leads.models import ConsentRecord, Lead, Suppression
from leads.services import suppression_add


class ConsentInline(ReadOnlyAdminMixin, admin.StackedInline):  # type: ignore[type-arg]
    model = ConsentRecord
    can_delete = False
    fields = ["captured_at", "text", "ip", "user_agent", "page_url", "trusted_form_cert_url", "jornaya_leadid", "raw"]
    readonly_fields = fields  # type: ignore[assignment]


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "created",
        "public_id",
        "organization",
        "campaign",
        "offer",
        "status",
        "reason",
        "payout",
        "quality_score",
        "test",
    ]
    list_filter = ["status", "reason", "offer", ("organization", SellerFilter), "test"]
    list_display_links = ["created", "public_id"]
    list_select_related = ["organization", "campaign", "offer"]
    search_fields = ["=public_id", "=ping__public_id"]
    search_help_text = "Search by lead id (led_…) or ping id (png_…)."
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [ConsentInline]  # exchange.admin adds the sales
    fieldsets = (
        (None, {"fields": ("public_id", "created_at", "updated_at", "organization", "campaign", "offer", "ping")}),
        ("Outcome", {"fields": ("status", "reason", "payout", "quality_score", "test")}),
        ("Data", {"fields": ("data", "pii", "email_hash", "phone_hash", "tracking")}),
    )
    readonly_fields = ["pii"]

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Lead) -> str:
        return when(obj.created_at)

    @admin.display(description="PII (decrypted)")
    def pii(self, obj: Lead) -> SafeString | str:
        """The consumer's personal data, decrypted for the operator (change page only)."""
        if not obj.pii_encrypted:
            return "—"
        try:
            data = pii_decrypt(obj.pii_encrypted)
        except PiiKeyError:
            return "Cannot be decrypted with the configured GAVEL_PII_KEYS."
        if not data:
            return "None kept (the consumer was suppressed)."
        audit_access(obj, what="decrypted PII")  # every operator's view of it is in the trail
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((k, v) for k, v in sorted(data.items())))
        return format_html("<table>{}</table>", rows)


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["lead", "organization", "captured_at", "ip", "page_url", "has_trusted_form", "has_jornaya"]
    list_select_related = ["lead", "organization"]
    list_filter = [("organization", SellerFilter)]
    search_fields = ["=lead__public_id", "=jornaya_leadid"]
    search_help_text = "Search by lead id (led_…) or Jornaya LeadiD."
    show_full_result_count = False
    fields = [
        "lead",
        "organization",
        "captured_at",
        "text",
        "ip",
        "user_agent",
        "page_url",
        "trusted_form_cert_url",
        "jornaya_leadid",
        "raw_json",
        "created_at",
    ]
    readonly_fields = ["raw_json"]

    @admin.display(description="TrustedForm", boolean=True)
    def has_trusted_form(self, obj: ConsentRecord) -> bool:
        return bool(obj.trusted_form_cert_url)

    @admin.display(description="Jornaya", boolean=True)
    def has_jornaya(self, obj: ConsentRecord) -> bool:
        return bool(obj.jornaya_leadid)

    @admin.display(description="as sent")
    def raw_json(self, obj: ConsentRecord) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.raw, indent=2, sort_keys=True))


class SuppressionAddForm(forms.ModelForm):  # type: ignore[type-arg]
    """Opt a consumer out by email or phone. The value is normalized and hashed in ``clean``;
    the form never hands the raw value to the model."""

    consumer = forms.CharField(
        label="Email or phone",
        max_length=254,
        help_text="Normalized and hashed (SHA-256) before it is stored; the value itself is never kept.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 40}),
    )

    class Meta:
        model = Suppression
        fields = ["reason"]

    def clean_consumer(self) -> str:
        value = self.cleaned_data["consumer"].strip()
        try:
            return email_hash(value) if "@" in value else phone_hash(value)
        except PiiInvalid as exc:
            raise forms.ValidationError(f"Not a usable email or phone number: {exc}") from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "consumer" in cleaned:
            self.instance.consumer_hash = cleaned["consumer"]
        return cleaned


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["hash_prefix", "reason", "created_at"]
    search_fields = ["consumer_hash__startswith"]
    # Searching by the raw email would put it in the URL and the access logs: hashes only.
    search_help_text = "Search by the start of the SHA-256 hash. To check a consumer, add them: a repeat is reported."
    date_hierarchy = "created_at"
    readonly_fields = ["consumer_hash", "reason", "created_at"]

    @admin.display(description="consumer hash", ordering="consumer_hash")
    def hash_prefix(self, obj: Suppression) -> str:
        return f"{obj.consumer_hash[:16]}…"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = SuppressionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        if obj is None:
            return ["consumer", "reason"]
        return ["consumer_hash", "reason", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return [] if obj is None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Suppression, form: Any, change: bool) -> None:
        existed = Suppression.objects.filter(consumer_hash=obj.consumer_hash).exists()
        suppression = suppression_add(consumer_hash=obj.consumer_hash, reason=obj.reason)
        obj.pk, obj.reason, obj.created_at = suppression.pk, suppression.reason, suppression.created_at
        if existed:
            messages.info(request, "This consumer was already suppressed; nothing changed.")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Suppression], search_term: str
    ) -> tuple[QuerySet[Suppression], bool]:
        return super().get_search_results(request, queryset, search_term.strip().lower())


from leads import privacy_admin  # noqa: E402,F401 - registers the privacy requests' admin
