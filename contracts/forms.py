"""The operator's contract form (the admin's contract page and the organization page's inline)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms.models import BaseInlineFormSet

from contracts.models import BuyerContract
from contracts.services import CONTRACT_FIELDS, contract_update


class BuyerContractForm(forms.ModelForm):  # type: ignore[type-arg]
    """Writes only what the operator changed from what the page showed.

    Every field carries the value it was shown (Django's ``show_hidden_initial``), so
    ``changed_data`` is what the operator changed on the page, and a change the buyer, the circuit
    breaker or another operator made while the page was open is kept: the save hands only the
    changed terms to :func:`contracts.services.contract_update`, the one write path of a contract's
    terms. A hold the operator sets or lifts here is the operator's (the breaker lets go)."""

    class Meta:
        model = BuyerContract
        fields = ["status", "hold", "hold_reason"]  # each admin page builds it with the fields it shows

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.show_hidden_initial = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "hold" in self.changed_data and cleaned.get("hold") == BuyerContract.Hold.BREAKER:
            self.add_error("hold", "Only the circuit breaker holds a contract as the breaker.")
        return cleaned

    def changed_terms(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.changed_data if name in CONTRACT_FIELDS}


def contract_form_save(form: BuyerContractForm, contract: BuyerContract) -> BuyerContract:
    """An existing contract's page saved: only the changed terms, through the service."""
    return contract_update(contract=contract, values=form.changed_terms())


class ContractInlineFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def save_existing(self, form: Any, obj: Any, commit: bool = True) -> Any:
        return contract_form_save(form, obj)
