from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("portal/", views.home, name="home"),
    path("portal/organization/", views.organization_switch, name="switch"),
]
urlpatterns += [
    path("portal/webhooks/", views.webhooks, name="webhooks"),
    path("portal/webhooks/<str:public_id>/<str:action>/", views.webhook_endpoint_action, name="webhook_endpoint"),
    path("portal/webhooks/deliveries/<str:public_id>/replay/", views.webhook_delivery_replay, name="webhook_replay"),
]
