from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core import hooks
        from core.audit import audit_register
        from exchange import deferred
        from exchange.auction.book import book_invalidate
        from exchange.erasure import consumer_erase
        from exchange.models import Offer
        from exchange.returns.models import Return
        from exchange.selectors import holds_expected
        from exchange.webhooks import event_emit

        deferred.connect()
        # The audit trail: the exchange's offers (operators' trail only; no organization).
        audit_register(Offer)
        audit_register(Return)  # requested here; decisions recorded by exchange.returns.services
        # The apps below the exchange tell it of market changes and events through core.hooks.
        hooks.market_changed_connect(book_invalidate)
        hooks.event_emit_connect(event_emit)
        hooks.holds_expected_connect(holds_expected)
        hooks.consumer_erase_connect(consumer_erase)
