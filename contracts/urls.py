from django.urls import path

from contracts import views

app_name = "contracts"
urlpatterns = [
    path("contracts/", views.contract_list, name="contract_list"),
    path("contracts/new/", views.contract_new, name="contract_new"),
    path("contracts/<str:public_id>/", views.contract_detail, name="contract_detail"),
    path("contracts/<str:public_id>/edit/", views.contract_edit, name="contract_edit"),
    path("contracts/<str:public_id>/status/", views.contract_status, name="contract_status"),
    path("campaigns/", views.campaign_list, name="campaign_list"),
    path("campaigns/<str:public_id>/", views.campaign_detail, name="campaign_detail"),
]
