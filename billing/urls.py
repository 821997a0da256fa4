from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("", views.billing_home, name="home"),
    path("balance/", views.balance, name="balance"),
    path("payouts/", views.payouts, name="payouts"),
    path("statements/", views.statements, name="statements"),
]
