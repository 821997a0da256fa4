"""The operator's page, /ops/ (staff only), included from ``exchange.urls`` by module name."""

from django.urls import path

from reporting import dashboard_views

app_name = "ops"
urlpatterns = [
    path("", dashboard_views.ops, name="ops"),
    path("<str:table>.csv", dashboard_views.ops_csv, name="ops_csv"),
]
