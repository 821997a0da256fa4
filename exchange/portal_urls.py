from django.urls import path

from exchange import contract_portal, portal
from exchange.webhooks import views as webhooks

app_name = "exchange"
urlpatterns = [
    path("purchases/", portal.purchase_list, name="purchase_list"),
    path("purchases/<str:public_id>/", portal.purchase_detail, name="purchase_detail"),
    path(
        "contracts/<str:public_id>/test-delivery/",
        contract_portal.contract_test_delivery,
        name="contract_test_delivery",
    ),
    path("bids/", portal.bid_list, name="bid_list"),
    path("webhooks/", webhooks.webhooks, name="webhooks"),
    path("webhooks/<str:public_id>/<str:action>/", webhooks.webhook_endpoint_action, name="webhook_endpoint"),
    path("webhooks/deliveries/<str:public_id>/replay/", webhooks.webhook_delivery_replay, name="webhook_replay"),
]
