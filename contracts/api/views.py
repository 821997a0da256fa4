"""Buyers read their contracts; sellers read their campaigns."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from contracts.api.serializers import CampaignOutput, ContractOutput, ContractTermsInput
from contracts.models import BuyerContract, Campaign
from contracts.selectors import campaign_get, campaigns_of, contract_get, contracts_of
from contracts.services import contract_update
from core.errors import Invalid


class ContractListView(TenantGenericAPIView):
    required_scope = "contracts"
    required_role = "buyer"
    serializer_class = ContractOutput
    queryset = BuyerContract.objects.none()  # the schema generator's model: the list has no filters

    @extend_schema(
        summary="List your buyer contracts",
        tags=["buyers"],
        operation_id="contracts_list",
        responses={200: ContractOutput(many=True)},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(contracts_of(organization=self.organization))
        return self.get_paginated_response(ContractOutput(page, many=True).data)


class ContractDetailView(TenantGenericAPIView):
    required_scope = "contracts"
    required_role = "buyer"
    serializer_class = ContractOutput

    @extend_schema(summary="Get one of your buyer contracts", tags=["buyers"], operation_id="contracts_get")
    def get(self, request: Request, contract_id: str) -> Response:
        contract = contract_get(organization=self.organization, public_id=contract_id)
        return Response(ContractOutput(contract).data)

    @extend_schema(
        summary="Change your contract: pause, price, caps, budget, filters, schedule (bid automation)",
        tags=["buyers"],
        operation_id="contracts_update",
        request=ContractTermsInput,
        responses={200: ContractOutput},
    )
    def patch(self, request: Request, contract_id: str) -> Response:
        contract = contract_get(organization=self.organization, public_id=contract_id)
        try:
            contract = contract_update(contract=contract, terms=request.data)
        except ValidationError as exc:
            raise Invalid("The request is not valid.", fields=exc.message_dict) from exc
        return Response(ContractOutput(contract).data)


class CampaignListView(TenantGenericAPIView):
    required_scope = "leads"
    required_role = "seller"
    serializer_class = CampaignOutput
    queryset = Campaign.objects.none()  # the schema generator's model: the list has no filters

    @extend_schema(
        summary="List your seller campaigns",
        tags=["sellers"],
        operation_id="campaigns_list",
        responses={200: CampaignOutput(many=True)},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(campaigns_of(organization=self.organization))
        return self.get_paginated_response(CampaignOutput(page, many=True).data)


class CampaignDetailView(TenantGenericAPIView):
    required_scope = "leads"
    required_role = "seller"
    serializer_class = CampaignOutput

    @extend_schema(summary="Get one of your seller campaigns", tags=["sellers"], operation_id="campaigns_get")
    def get(self, request: Request, campaign_id: str, **kwargs: Any) -> Response:
        campaign = campaign_get(organization=self.organization, public_id=campaign_id)
        return Response(CampaignOutput(campaign).data)
