"""``POST /api/v1/contracts``: a buyer creates a contract (DESIGN.md §6.1).

The list (``GET``) is the contracts app's view; creating is added here, in the exchange's API,
because a POST honours ``Idempotency-Key`` and the idempotency mixin is the exchange's (the
contracts app sits below the exchange and may not import it). The write itself is the contracts
app's one write path (:func:`contracts.services.contract_create`).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from contracts.api.serializers import ContractOutput
from contracts.api.views import ContractListView
from contracts.services import contract_create
from contracts.terms import ContractCreateInput
from core.errors import Invalid
from exchange.api.idempotency import IdempotentPostMixin
from exchange.api.views import IDEMPOTENCY_HEADER

CREATE_ERRORS = {
    400: {"description": "malformed_json"},
    401: {"description": "authentication_failed"},
    403: {"description": "permission_denied: the key lacks the `contracts` scope, or the organization does not buy"},
    409: {"description": "idempotency_in_progress"},
    422: {
        "description": "validation_error: `error.fields` names each bad term as written (`offer`, `price`, "
        "`caps.day`, `filters`…); `priority`, `weight` and `hold` are the exchange's. Also "
        "idempotency_key_reused."
    },
}


class ContractCollectionView(IdempotentPostMixin, ContractListView):
    """``GET``: the buyer's contracts; ``POST``: a new one."""

    @extend_schema(
        summary="Create a buyer contract",
        description=(
            "Creates a contract on an offer: a fixed `price` (with `modifiers`) or an `rtb_url` (with "
            "`max_price`), never both; `filters`, `caps`, `budget`, `schedule`, `dedup_days`, `min_score`, "
            "`return_window_hours`, `delivery`. A term left out is none (no caps, no filters…). Filters and "
            "modifiers may test the offer's ping fields and `$source`, `$hour`, `$weekday`. The contract "
            "bids from the next ping on (unless `status` is `paused`). `priority`, `weight` and `hold` are "
            "set by the exchange: sending them is a 422."
        ),
        tags=["buyers"],
        operation_id="contracts_create",
        request=ContractCreateInput,
        responses={201: ContractOutput, **CREATE_ERRORS},
        parameters=[IDEMPOTENCY_HEADER],
        examples=[
            OpenApiExample(
                "A fixed-price contract",
                request_only=True,
                value={
                    "name": "West coast, business hours",
                    "offer": "auto-insurance",
                    "price": "30.00",
                    "modifiers": [{"when": {"field": "state", "op": "eq", "value": "CA"}, "add": "5.00"}],
                    "filters": {
                        "all": [
                            {"field": "state", "op": "in", "value": ["CA", "OR", "WA"]},
                            {"field": "$hour", "op": "between", "value": [9, 17]},
                        ]
                    },
                    "caps": {"day": 100},
                    "budget": {"day": "3000.00"},
                    "delivery": {"method": "none"},
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            contract = contract_create(organization=self.organization, terms=request.data)
        except ValidationError as exc:
            raise Invalid("The request is not valid.", fields=exc.message_dict) from exc
        return Response(ContractOutput(contract).data, status=status.HTTP_201_CREATED)
