"""Forms of the leads app's pages: the suppression upload and the public opt-out."""

from __future__ import annotations

from typing import Any

from django import forms

from core.pii import PiiInvalid
from leads.models import Suppression
from leads.suppressions import Consumer, consumer_of

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class SuppressionUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="One email or phone per row, or a header row naming email, phone, email_sha256 or phone_sha256 "
        "columns. Up to 10 MB.",
    )
    scope = forms.ChoiceField(choices=Suppression.Scope.choices, initial=Suppression.Scope.ORGANIZATION)
    reason = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, buyer: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not buyer:
            scope = self.fields["scope"]
            assert isinstance(scope, forms.ChoiceField)
            scope.choices = [(Suppression.Scope.EXCHANGE.value, Suppression.Scope.EXCHANGE.label)]
            scope.initial = Suppression.Scope.EXCHANGE

    filename = ""

    def clean_file(self) -> str:
        upload = self.cleaned_data["file"]
        self.filename = str(upload.name or "upload.csv")[:200]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 10 MB: split it in parts.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise forms.ValidationError("The file is not UTF-8 text: save it as CSV (UTF-8).") from exc
        if not text.strip():
            raise forms.ValidationError("The file is empty.")
        return str(text)


class OptOutForm(forms.Form):
    contact = forms.CharField(
        label="Your email address or phone number",
        max_length=320,
        help_text="For example jane@example.com or (201) 555-0123.",
    )
    # A field people never see (hidden by CSS, skipped by screen readers): bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty")

    def clean_contact(self) -> Consumer:
        value = self.cleaned_data["contact"].strip()
        try:
            return consumer_of("email" if "@" in value else "phone", value)
        except PiiInvalid as exc:
            raise forms.ValidationError(f"{exc} Enter an email address or a phone number.") from exc
