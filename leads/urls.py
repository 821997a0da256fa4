from django.urls import path

from leads import views

app_name = "leads"
urlpatterns = [
    path("leads/", views.lead_list, name="lead_list"),
    path("leads.csv", views.lead_export, name="lead_export"),
]
