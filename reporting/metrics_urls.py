"""``/metrics``, included from ``exchange.urls`` by module name (reporting sits above the exchange)."""

from django.urls import path

from reporting.metrics import metrics

urlpatterns = [path("metrics", metrics, name="metrics")]
