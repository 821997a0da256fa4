"""Reporting's portal pages, under /portal/ (included from ``exchange.urls`` by module name)."""

from django.urls import path

from reporting import views

app_name = "reporting"
urlpatterns = [
    path("purchases/<str:public_id>/conversions/", views.purchase_conversions, name="purchase_conversions"),
    path("postbacks/", views.postback_list, name="postback_list"),
    path("campaigns/<str:public_id>/postbacks/", views.campaign_postbacks, name="campaign_postbacks"),
]
