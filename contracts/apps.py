from django.apps import AppConfig


class ContractsConfig(AppConfig):
    name = "contracts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from contracts.models import BuyerContract, Campaign
        from core.audit import audit_register

        # The audit trail: every change of terms, whoever makes it (holds: contracts.services).
        audit_register(BuyerContract, m2m=["blocked_sellers"])
        audit_register(Campaign, exclude=["source_token"], m2m=["blocked_buyers"])
