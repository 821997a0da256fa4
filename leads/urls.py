from django.urls import path

from leads import suppression_views, views

app_name = "leads"
urlpatterns = [
    path("leads/", views.lead_list, name="lead_list"),
    path("leads.csv", views.lead_export, name="lead_export"),
    path("suppressions/", suppression_views.suppression_list, name="suppression_list"),
    path("suppressions/upload", suppression_views.suppression_upload, name="suppression_upload"),
    path(
        "suppressions/uploads/<str:upload_id>/",
        suppression_views.suppression_upload_progress,
        name="suppression_upload_progress",
    ),
    path(
        "suppressions/uploads/<str:upload_id>/errors.csv",
        suppression_views.suppression_upload_errors,
        name="suppression_upload_errors",
    ),
    path(
        "suppressions/<str:suppression_id>/remove",
        suppression_views.suppression_delete,
        name="suppression_delete",
    ),
]
