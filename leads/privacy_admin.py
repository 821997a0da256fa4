"""The operator's privacy requests: file one for a consumer, follow its deadlines, confirm, process
now, reject with a note, download an access request's export (registered by ``leads.admin``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin import when
from core.errors import ExchangeError
from leads.models import PrivacyRequest
from leads.privacy import (
    consumer_identify,
    export_bytes,
    privacy_export_json,
    privacy_request_confirm,
    privacy_request_create,
    privacy_request_process,
    privacy_request_reject,
)


class PrivacyRequestAddForm(forms.ModelForm):  # type: ignore[type-arg]
    """File a request for a consumer who asked the operator (by mail, phone, email)."""

    email = forms.CharField(required=False, max_length=254, widget=forms.TextInput(attrs={"size": 40}))
    phone = forms.CharField(required=False, max_length=40)

    class Meta:
        model = PrivacyRequest
        fields = ["kind", "note"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            consumer_identify(email=cleaned.get("email"), phone=cleaned.get("phone"))
        except ExchangeError as exc:
            for name, errors in (exc.fields or {}).items():
                self.add_error(name if name in ("email", "phone") else None, errors)
        return cleaned


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["public_id", "kind", "status", "source", "filer", "received", "confirm_by", "answer_by", "late"]
    list_filter = ["status", "kind", "source"]
    search_fields = ["=public_id"]
    search_help_text = "Search by request id (prv_…)."
    list_select_related = ["organization"]
    actions = ["confirm", "process_now", "reject"]
    readonly_fields = [
        "public_id",
        "kind",
        "status",
        "source",
        "organization",
        "filed_by",
        "email_hash",
        "phone_hash",
        "received_at",
        "confirm_due_at",
        "answer_due_at",
        "confirmed_at",
        "completed_at",
        "result",
        "export_link",
        "late",
    ]
    fieldsets = (
        (None, {"fields": ("public_id", "kind", "status", "source", "organization", "filed_by", "late")}),
        ("Consumer (hashes)", {"fields": ("email_hash", "phone_hash")}),
        ("Deadlines", {"fields": ("received_at", "confirm_due_at", "answer_due_at", "confirmed_at", "completed_at")}),
        ("Answer", {"fields": ("note", "result", "export_link")}),
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = PrivacyRequestAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ((None, {"fields": ("kind", "email", "phone", "note")}),)
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return [] if obj is None else list(self.readonly_fields)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: PrivacyRequest, form: Any, change: bool) -> None:
        if change:  # only the note is editable
            PrivacyRequest.objects.filter(pk=obj.pk).update(note=obj.note)
            return
        filed = privacy_request_create(
            kind=form.cleaned_data["kind"],
            email=form.cleaned_data.get("email"),
            phone=form.cleaned_data.get("phone"),
            source=PrivacyRequest.Source.ADMIN,
            user=request.user,  # type: ignore[arg-type]
        )
        if obj.note:
            PrivacyRequest.objects.filter(pk=filed.pk).update(note=obj.note)
        obj.pk, obj.public_id = filed.pk, filed.public_id
        messages.info(request, "Received. Confirm it once you have verified the consumer's identity.")

    @admin.display(description="filed by")
    def filer(self, obj: PrivacyRequest) -> str:
        return obj.organization.name if obj.organization else obj.get_source_display()

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: PrivacyRequest) -> str:
        return when(obj.received_at)

    @admin.display(description="confirm by", ordering="confirm_due_at")
    def confirm_by(self, obj: PrivacyRequest) -> str:
        return when(obj.confirm_due_at)

    @admin.display(description="answer by", ordering="answer_due_at")
    def answer_by(self, obj: PrivacyRequest) -> str:
        return when(obj.answer_due_at)

    @admin.display(description="overdue")
    def late(self, obj: PrivacyRequest) -> SafeString | str:
        if obj.pk and obj.overdue():
            return format_html('<strong style="color:{}">OVERDUE</strong>', "#b42318")
        return "—"

    @admin.display(description="export")
    def export_link(self, obj: PrivacyRequest) -> SafeString | str:
        if not obj.export_encrypted:
            return "—"
        url = reverse("admin:leads_privacyrequest_export", args=[obj.pk])
        return format_html('<a href="{}">Download the JSON export</a>', url)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:pk>/export.json",
                self.admin_site.admin_view(self.export_view),
                name="leads_privacyrequest_export",
            )
        ]
        return extra + super().get_urls()

    def export_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        obj = get_object_or_404(PrivacyRequest, pk=pk)
        export = privacy_export_json(obj)
        if export is None:
            return HttpResponse("No export (yet).", status=404, content_type="text/plain")
        response = HttpResponse(export_bytes(export), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{obj.public_id}.json"'
        return response

    def _each(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest], act: Any, done: str) -> None:
        count = 0
        for obj in queryset:
            try:
                act(obj)
                count += 1
            except ExchangeError as exc:
                messages.error(request, f"{obj.public_id}: {exc.message}")
        if count:
            messages.success(request, f"{count} request(s) {done}.")

    @admin.action(description="Confirm (identity verified): processed within minutes")
    def confirm(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest]) -> None:
        self._each(request, queryset, lambda obj: privacy_request_confirm(request=obj), "confirmed")

    @admin.action(description="Process now (confirmed requests)")
    def process_now(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest]) -> None:
        def run(obj: PrivacyRequest) -> None:
            if obj.status != PrivacyRequest.Status.CONFIRMED:
                raise ExchangeError("Only a confirmed request is processed.")
            privacy_request_process(request_id=obj.pk, now=timezone.now())

        self._each(request, queryset, run, "processed")

    @admin.action(description="Reject (write the reason in the request's note first)")
    def reject(self, request: HttpRequest, queryset: QuerySet[PrivacyRequest]) -> None:
        self._each(request, queryset, lambda obj: privacy_request_reject(request=obj, note=obj.note), "rejected")
