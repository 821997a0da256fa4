from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core import hooks
        from reporting.services import lead_sold_heard

        # The seller's postback of a sold lead: the exchange emits lead.sold without knowing of it.
        hooks.event_subscribe("lead.sold", lead_sold_heard)
