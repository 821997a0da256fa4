"""Reporting's API paths, included in ``exchange.urls``' ``api_v1`` list (in its ``api`` namespace)."""

from django.urls import path

from reporting.api import views

urlpatterns = [
    path("conversions", views.ConversionCollectionView.as_view(), name="conversion-list"),
]
