"""The operator's contract form (the admin's contract page and the organization page's inline)."""

from __future__ import annotations

from typing import Any

from django import forms

from contracts.models import BuyerContract

# The fields a person's change of which takes a contract out of the circuit breaker's hands.
PERSONS_FIELDS = ("status", "paused_reason")


class BuyerContractForm(forms.ModelForm):  # type: ignore[type-arg]
    """A status or a pause reason an operator sets here is a person's choice: the circuit breaker
    lets go of the contract (``BuyerContract.breaker_release``). To keep a contract the breaker
    paused paused for good, give the reason.

    Only what the operator changed on the page counts. The page carries the status and reason it
    showed (``status_shown``, ``paused_reason_shown``), so a status the breaker set while the page
    was open is kept, not overwritten by the page's older value. A page that does not carry them
    falls back to comparing with the contract as stored."""

    status_shown = forms.CharField(widget=forms.HiddenInput, required=False)
    paused_reason_shown = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = BuyerContract
        fields = ["status", "paused_reason"]  # each admin page builds it with the fields it shows

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in PERSONS_FIELDS:
            self.fields[f"{name}_shown"].initial = getattr(self.instance, name)
        self.changed_by_person: set[str] = set()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in PERSONS_FIELDS:
            if name not in self.fields or name not in cleaned:
                continue
            shown = self.data.get(self.add_prefix(f"{name}_shown"))
            if shown is None:  # the page did not say what it showed
                if name in self.changed_data:
                    self.changed_by_person.add(name)
            elif cleaned[name] != shown:
                self.changed_by_person.add(name)
            else:  # left as it was shown: keep what is stored now (the breaker may have changed it)
                cleaned[name] = getattr(self.instance, name)
        return cleaned

    def save(self, commit: bool = True) -> BuyerContract:
        if self.changed_by_person:
            self.instance.breaker_release(keep_reason="paused_reason" in self.changed_by_person)
        return super().save(commit)
