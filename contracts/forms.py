"""The operator's contract and campaign forms (the admin's pages and the organization page's inlines).

They show the model's columns; what they save goes through the one input shape of the terms
(:mod:`contracts.terms`) and the services, as the buyer API and the market file do."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from contracts.models import BuyerContract, Campaign
from contracts.services import campaign_update, campaign_upsert, contract_update, contract_upsert
from contracts.terms import (
    DIRECT_ROUTE_COLUMNS,
    CampaignTermsInput,
    ContractTermsInput,
    campaign_column_terms,
    contract_column_terms,
)


class _ChangedTermsForm(forms.ModelForm):  # type: ignore[type-arg]
    """Writes only what the operator changed from what the page showed.

    Every field carries the value it was shown (Django's ``show_hidden_initial``), so
    ``changed_data`` is what the operator changed on the page, and a change the buyer, the circuit
    breaker or another operator made while the page was open is kept: the save hands only the
    changed terms to the service. The terms are read by their input serializer here too, so a
    refusal shows on the field that caused it."""

    terms_input: type[ContractTermsInput] | type[CampaignTermsInput]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.show_hidden_initial = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        try:
            self.terms_input(data=self.changed_terms(), partial=True, **self._input_options()).columns()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                field = self._column(name)
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
        return cleaned

    def _input_options(self) -> dict[str, Any]:
        return {}

    def _column(self, term: str) -> str:
        return term

    def _changed_columns(self) -> dict[str, Any]:
        names = set(self.terms_input(**self._input_options()).fields) | {
            f"{prefix}_{period}" for prefix in ("cap", "budget") for period in ("day", "week", "month", "total")
        }
        return {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in self.cleaned_data and (name in names or name in DIRECT_ROUTE_COLUMNS.values())
        }

    def changed_terms(self) -> dict[str, Any]:
        raise NotImplementedError


class BuyerContractForm(_ChangedTermsForm):
    """A contract's page or inline row; a hold the operator sets or lifts here is the operator's
    (the breaker lets go)."""

    terms_input = ContractTermsInput

    class Meta:
        model = BuyerContract
        fields = ["status", "hold", "hold_reason"]  # each admin page builds it with the fields it shows

    def _input_options(self) -> dict[str, Any]:
        return {"operator": True}

    def _column(self, term: str) -> str:
        group, _, period = term.partition(".")
        return {"caps": f"cap_{period}", "budget": f"budget_{period}"}.get(group, term) if period else term

    def changed_terms(self) -> dict[str, Any]:
        return contract_column_terms(self._changed_columns())


class CampaignForm(_ChangedTermsForm):
    terms_input = CampaignTermsInput

    class Meta:
        model = Campaign
        fields = ["status"]  # each admin page builds it with the fields it shows

    def _column(self, term: str) -> str:
        group, _, key = term.partition(".")
        return DIRECT_ROUTE_COLUMNS.get(key, term) if group == "direct_route" else term

    def _changed_columns(self) -> dict[str, Any]:
        changed = super()._changed_columns()
        # The admin's chooser names buyers as organizations and saves them with the form's
        # relations; the terms' ``blocked_buyers`` names them by the seller's tokens.
        changed.pop("blocked_buyers", None)
        # A route is one thing: its contract, price and share go together.
        if any(column in changed for column in DIRECT_ROUTE_COLUMNS.values()):
            changed.update({c: self.cleaned_data.get(c) for c in DIRECT_ROUTE_COLUMNS.values() if c in self.fields})
        return changed

    def changed_terms(self) -> dict[str, Any]:
        return campaign_column_terms(self._changed_columns())


def contract_form_save(form: BuyerContractForm, contract: BuyerContract, *, change: bool = True) -> BuyerContract:
    """A contract's page saved, through the service: an existing contract gets only the changed
    terms; a new one is declared whole (what was left as shown is the model's default)."""
    if change:
        return contract_update(contract=contract, terms=form.changed_terms(), operator=True)
    saved, _ = contract_upsert(
        organization=contract.organization,
        offer=contract.offer,
        slug=contract.slug,
        terms=form.changed_terms(),
        operator=True,
    )
    return saved


def campaign_form_save(form: CampaignForm, campaign: Campaign, *, change: bool = True) -> Campaign:
    """A campaign's page saved, through the service, as :func:`contract_form_save`."""
    if change:
        return campaign_update(campaign=campaign, terms=form.changed_terms())
    saved, _ = campaign_upsert(
        organization=campaign.organization, offer=campaign.offer, slug=campaign.slug, terms=form.changed_terms()
    )
    return saved


class ContractInlineFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def save_existing(self, form: Any, obj: Any, commit: bool = True) -> Any:
        return contract_form_save(form, obj)


class CampaignInlineFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def save_existing(self, form: Any, obj: Any, commit: bool = True) -> Any:
        return campaign_form_save(form, obj)
