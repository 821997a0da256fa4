"""Routes for tests/exchange/test_idempotency.py: one test-only view behind two paths."""

from django.urls import path

from tests.exchange.test_idempotency import IdemView

urlpatterns = [
    path("idem", IdemView.as_view()),
    path("idem/other", IdemView.as_view()),
]
