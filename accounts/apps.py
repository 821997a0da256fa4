from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.api import schema  # noqa: F401 - registers the OpenAPI auth extension
        from accounts.models import ApiKey, Membership, Organization
        from core.audit import audit_register

        # The audit trail: secrets and hashes are never recorded.
        audit_register(Organization, exclude=["signing_secret"])
        audit_register(Membership)
        audit_register(ApiKey, exclude=["key_hash", "last_used_at"])
