from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.views import root
from contracts.api import views as contract_api
from exchange.api import contracts as contract_create_api
from exchange.api import views as exchange_api
from exchange.api.errors import api_not_found
from exchange.api.purchases import views as purchases_api
from exchange.api.suppressions import SuppressionCollectionView
from exchange.hosted_form import hosted_form
from exchange.probes import healthz, readyz
from leads import public as privacy_public
from leads import suppression_views
from leads.api import views as privacy_api

api_v1: list[URLPattern | URLResolver] = [
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("ping", exchange_api.PingView.as_view(), name="ping"),
    path("post", exchange_api.PostView.as_view(), name="post"),
    path("leads", exchange_api.LeadCreateView.as_view(), name="lead-create"),
    path("leads/<str:lead_id>", exchange_api.LeadDetailView.as_view(), name="lead-detail"),
    path("contracts", contract_create_api.ContractCollectionView.as_view(), name="contract-list"),
    path("contracts/<str:contract_id>", contract_api.ContractDetailView.as_view(), name="contract-detail"),
    path("campaigns", contract_api.CampaignListView.as_view(), name="campaign-list"),
    path("campaigns/<str:campaign_id>", contract_api.CampaignDetailView.as_view(), name="campaign-detail"),
    path("purchases", purchases_api.PurchaseListView.as_view(), name="purchase-list"),
    path("purchases/<str:sale_id>", purchases_api.PurchaseDetailView.as_view(), name="purchase-detail"),
    path("purchases/<str:sale_id>/return", purchases_api.PurchaseReturnView.as_view(), name="purchase-return"),
    path("returns", purchases_api.ReturnListView.as_view(), name="return-list"),
    path("returns/<str:return_id>", purchases_api.ReturnDetailView.as_view(), name="return-detail"),
    path("suppressions", SuppressionCollectionView.as_view(), name="suppression-list"),
    path("privacy-requests", privacy_api.PrivacyRequestCreateView.as_view(), name="privacy-request-create"),
    path("privacy-requests/<str:request_id>", privacy_api.PrivacyRequestDetailView.as_view(), name="privacy-request"),
    # Reporting sits above the exchange: its endpoints are included by module name, not imported.
    path("", include("reporting.api.urls")),
    # Unknown API paths answer in the API's error format, DEBUG or not, whatever the method: a
    # POST to a mistyped path (``/api/v1/ping/``) would otherwise get Django's HTML CSRF page.
    re_path(r"^.*$", csrf_exempt(api_not_found)),
]

urlpatterns = [
    path("", root, name="root"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Reporting sits above the exchange: /metrics is included by module name, not imported.
    path("", include("reporting.metrics_urls")),
    path("admin/", admin.site.urls),
    path("opt-out", suppression_views.opt_out, name="opt_out"),
    path("opt-out/done", suppression_views.opt_out_done, name="opt_out_done"),
    path("privacy/", privacy_public.privacy_request_page, name="privacy"),
    path("privacy/confirm/<str:token>", privacy_public.privacy_confirm_page, name="privacy-confirm"),
    path("f/<str:campaign_id>", hosted_form, name="hosted-form"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api:schema"), name="api-docs"),
    path("", include("accounts.urls")),
    path("portal/", include("contracts.urls")),
    path("portal/", include("exchange.portal_urls")),
    path("portal/", include("leads.urls")),
    path("portal/billing/", include("billing.urls")),
    path("portal/", include("reporting.urls")),
    path("ops/", include("reporting.ops_urls")),
]

admin.site.site_header = "Gavel exchange — operator"
admin.site.site_title = "Gavel operator"
admin.site.index_title = "Run the exchange"
admin.site.enable_nav_sidebar = False  # the market's lists are wide

handler404 = "exchange.views.not_found"
handler500 = "exchange.views.server_error"
