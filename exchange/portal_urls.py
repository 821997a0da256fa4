from django.urls import path

from exchange import portal

app_name = "exchange"
urlpatterns = [
    path("purchases/", portal.purchase_list, name="purchase_list"),
    path("purchases/<str:public_id>/", portal.purchase_detail, name="purchase_detail"),
    path("bids/", portal.bid_list, name="bid_list"),
]
