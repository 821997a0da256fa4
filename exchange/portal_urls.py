from django.urls import path

from exchange import campaign_portal, contract_portal, contract_test, portal
from exchange.webhooks import views as webhooks

app_name = "exchange"
urlpatterns = [
    path("purchases/", portal.purchase_list, name="purchase_list"),
    path("purchases.csv", portal.purchase_export, name="purchase_export"),
    path("returns/", portal.return_list, name="return_list"),
    path("purchases/<str:public_id>/", portal.purchase_detail, name="purchase_detail"),
    path("campaigns/<str:public_id>/console/", campaign_portal.campaign_console, name="campaign_console"),
    path("campaigns/<str:public_id>/terms/", campaign_portal.campaign_terms, name="campaign_terms"),
    path(
        "contracts/<str:public_id>/test-delivery/",
        contract_portal.contract_test_delivery,
        name="contract_test_delivery",
    ),
    path("bids/", portal.bid_list, name="bid_list"),
    path("leads/<str:public_id>/", portal.lead_detail, name="lead_detail"),
    # Before contracts' "contracts/<public_id>/" (both under /portal/): "test" is not an id.
    path("contracts/test", contract_test.contract_test, name="contract_test"),
    path("webhooks/", webhooks.webhooks, name="webhooks"),
    path("webhooks/<str:public_id>/<str:action>/", webhooks.webhook_endpoint_action, name="webhook_endpoint"),
    path("webhooks/deliveries/<str:public_id>/replay/", webhooks.webhook_delivery_replay, name="webhook_replay"),
]
