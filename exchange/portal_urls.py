from django.urls import path

from exchange import portal
from exchange.webhooks import views as webhooks

app_name = "exchange"
urlpatterns = [
    path("purchases/", portal.purchase_list, name="purchase_list"),
    path("purchases.csv", portal.purchase_export, name="purchase_export"),
    path("returns/", portal.return_list, name="return_list"),
    path("purchases/<str:public_id>/", portal.purchase_detail, name="purchase_detail"),
    path("bids/", portal.bid_list, name="bid_list"),
    path("webhooks/", webhooks.webhooks, name="webhooks"),
    path("webhooks/<str:public_id>/<str:action>/", webhooks.webhook_endpoint_action, name="webhook_endpoint"),
    path("webhooks/deliveries/<str:public_id>/replay/", webhooks.webhook_delivery_replay, name="webhook_replay"),
]
