"""Reporting's portal pages, under /portal/ (included from ``exchange.urls`` by module name)."""

from django.urls import path

from reporting import dashboard_views, views

app_name = "reporting"
urlpatterns = [
    path("purchases/<str:public_id>/conversions/", views.purchase_conversions, name="purchase_conversions"),
    path("postbacks/", views.postback_list, name="postback_list"),
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("dashboard/<str:side>/<str:table>.csv", dashboard_views.dashboard_csv, name="dashboard_csv"),
    path("campaigns/<str:public_id>/postbacks/", views.campaign_postbacks, name="campaign_postbacks"),
]
