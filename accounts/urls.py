from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("portal/", views.home, name="home"),
    path("portal/organization/", views.organization_switch, name="switch"),
    path("portal/team/", views.team, name="team"),
    path("portal/team/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("portal/team/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("portal/team/invitations/<int:invitation_id>/cancel/", views.invitation_cancel_view, name="invitation_cancel"),
    path("invite/<str:token>/", views.invite_accept, name="invite_accept"),
    path("portal/keys/", views.keys, name="keys"),
    path("portal/audit/", views.audit_trail, name="audit"),
    path("portal/keys/<int:key_id>/<str:action>/", views.key_action, name="key_action"),
]
