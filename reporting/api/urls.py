"""Reporting's API routes, included in ``/api/v1/`` by the project's URL conf."""

from django.urls import path

from reporting.api.views import ReportView

urlpatterns = [
    path("reports", ReportView.as_view(), name="reports"),
]
