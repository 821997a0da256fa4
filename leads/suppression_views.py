"""Portal pages for suppressions (buyers and sellers) and the public opt-out page.

The portal page lists the organization's suppressions (hashes only; search by email or phone,
hashed before it is looked up), takes CSV uploads (managers and owners) processed in the
background with their progress polled by htmx, offers each upload's error report as CSV, and
removes entries of the organization's own list. ``/opt-out`` needs no login: a consumer opts out
exchange-wide at once; a honeypot and a per-IP hourly limit keep bots off it.
"""

from __future__ import annotations

import csv
import io

from celery import signature
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.portal import portal_page, role_allows
from core.pii import PiiInvalid
from leads.forms import OptOutForm, SuppressionUploadForm
from leads.models import Suppression, SuppressionUpload
from leads.selectors import suppressions_of
from leads.services import suppression_file, suppression_remove, suppression_upload_rows
from leads.suppressions import consumer_guess

PAGE_SIZE = 50
UPLOAD_TASK = "leads.suppression_upload_process"  # leads.tasks, by name (the tasks import the services)
OPT_OUTS_PER_IP_PER_HOUR = 10


def _context(request: HttpRequest, form: SuppressionUploadForm | None = None) -> dict[str, object]:
    organization = request.organization  # type: ignore[attr-defined]
    query = request.GET.get("q", "").strip()
    search_error = ""
    rows = suppressions_of(organization=organization, scope=request.GET.get("scope") or None)
    if query:
        try:
            rows = rows.filter(consumer_hash=consumer_guess(query).hash)
        except PiiInvalid as exc:
            search_error = f"{exc} Search by a whole email address or phone number."
            rows = rows.none()
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "page": page,
        "query": query,
        "search_error": search_error,
        "uploads": SuppressionUpload.objects.filter(organization=organization)[:5],
        "form": form or SuppressionUploadForm(buyer=organization.is_buyer),
        "can_upload": role_allows(getattr(request, "membership", None), "manager"),
        "is_buyer": organization.is_buyer,
    }


@portal_page()
def suppression_list(request: HttpRequest) -> HttpResponse:
    return render(request, "leads/suppressions.html", _context(request))


@require_POST
@portal_page(role="manager")
def suppression_upload(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    form = SuppressionUploadForm(request.POST, request.FILES, buyer=organization.is_buyer)
    if not form.is_valid():
        return render(request, "leads/suppressions.html", _context(request, form), status=422)
    content = form.cleaned_data["file"]
    with transaction.atomic():
        upload = SuppressionUpload.objects.create(
            organization=organization,
            uploaded_by=request.user if request.user.is_authenticated else None,
            filename=form.filename,
            scope=form.cleaned_data["scope"],
            reason=form.cleaned_data["reason"],
            content=content,
            total=suppression_upload_rows(content),
        )
        # robust: with the broker down the upload is still taken; leads.work_due picks it up.
        transaction.on_commit(
            lambda: signature(UPLOAD_TASK, kwargs={"upload_id": upload.pk}).apply_async(), robust=True
        )
    messages.success(request, f"{upload.filename} is uploaded: {upload.total} rows are being processed below.")
    return redirect("leads:suppression_list")


def _upload_of(request: HttpRequest, upload_id: str) -> SuppressionUpload:
    upload = SuppressionUpload.objects.filter(
        organization=request.organization,  # type: ignore[attr-defined]
        public_id=upload_id,
    ).first()
    if upload is None:
        raise Http404("No such upload.")
    return upload


@portal_page()
def suppression_upload_progress(request: HttpRequest, upload_id: str) -> HttpResponse:
    """One upload's progress row (htmx polls it every second until the upload is done)."""
    return render(request, "leads/_upload_row.html", {"upload": _upload_of(request, upload_id)})


@portal_page()
def suppression_upload_errors(request: HttpRequest, upload_id: str) -> HttpResponse:
    upload = _upload_of(request, upload_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "value", "error"])
    writer.writerows(upload.errors)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="suppression-errors-{upload.public_id}.csv"'
    return response


@require_POST
@portal_page(role="manager")
def suppression_delete(request: HttpRequest, suppression_id: str) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    if not suppression_remove(organization_id=organization.pk, public_id=suppression_id):
        raise Http404("No such entry on your list.")
    messages.success(request, "Removed from your do-not-contact list.")
    return redirect("leads:suppression_list")


def _client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


def opt_out(request: HttpRequest) -> HttpResponse:
    """The public opt-out page: an email or phone, suppressed exchange-wide at once."""
    if request.method == "POST":
        form = OptOutForm(request.POST)
        key = f"gavel:opt-out:{_client_ip(request)}"
        cache.add(key, 0, timeout=3600)
        try:
            count = int(cache.incr(key))
        except ValueError:
            count = 1
        if count > OPT_OUTS_PER_IP_PER_HOUR:
            return render(request, "leads/opt_out.html", {"form": form, "limited": True}, status=429)
        if form.is_valid():
            if not form.cleaned_data["website"]:  # a bot filled the hidden field: nothing filed, same answer
                consumer = form.cleaned_data["contact"]
                suppression_file(
                    consumer_hash=consumer.hash,
                    kind=consumer.kind,
                    scope=Suppression.Scope.EXCHANGE,
                    source=Suppression.Source.OPT_OUT,
                    reason="Opt-out page",
                )
            return redirect("opt_out_done")
        return render(request, "leads/opt_out.html", {"form": form}, status=422)
    return render(request, "leads/opt_out.html", {"form": OptOutForm()})


def opt_out_done(request: HttpRequest) -> HttpResponse:
    return render(request, "leads/opt_out_done.html")
