"""The operator's contract form (the admin's contract page and the organization page's inline)."""

from __future__ import annotations

from django import forms

from contracts.models import BuyerContract


class BuyerContractForm(forms.ModelForm):  # type: ignore[type-arg]
    """A status or a pause reason an operator sets here is a person's choice: the circuit breaker
    lets go of the contract (``BuyerContract.breaker_release``). Only a change counts, as every
    save sends the status; so to keep a contract the breaker paused paused for good, give the
    reason."""

    class Meta:
        model = BuyerContract
        fields = ["status", "paused_reason"]  # each admin page builds it with the fields it shows

    def save(self, commit: bool = True) -> BuyerContract:
        if "status" in self.changed_data or "paused_reason" in self.changed_data:
            self.instance.breaker_release(keep_reason="paused_reason" in self.changed_data)
        return super().save(commit)
