from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.audit import audit_register
        from leads.models import Suppression

        # The audit trail: who suppressed whom (a hash, never the email or phone).
        audit_register(Suppression)
