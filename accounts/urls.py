from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("portal/", views.home, name="home"),
    path("portal/organization/", views.organization_switch, name="switch"),
]
