"""Reporting's API routes, included in ``/api/v1/`` (the ``api`` namespace) by the project's URL conf."""

from django.urls import path

from reporting.api import views

urlpatterns = [
    path("reports", views.ReportView.as_view(), name="reports"),
    path("conversions", views.ConversionCollectionView.as_view(), name="conversion-list"),
]
