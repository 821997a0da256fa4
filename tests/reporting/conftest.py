from __future__ import annotations

from typing import Any

import pytest

from accounts.tenancy import market_scope
from exchange.models import Sale
from tests.exchange.builder import BUYER_KEY_PREFIX, buyer, client, load, sell
from tests.exchange.receiver import Receiver

ACME_KEY = f"{BUYER_KEY_PREFIX}acme_000000"
BOB_KEY = f"{BUYER_KEY_PREFIX}bob_000000"


@pytest.fixture
def receiver():
    """A real local HTTP server that records what it is sent and answers as told."""
    running = Receiver().start()
    yield running
    running.stop()


def market_with(campaign: dict[str, Any] | None = None) -> dict[str, Any]:
    """Two buyers (acme pays 20.00, bob 10.00: acme wins) and the sellers of the builder's market."""
    return load(buyer("acme", "20.00"), buyer("bob", "10.00"), campaign=campaign)


def sold(n: int = 0, **kwargs: Any) -> Sale:
    """Sell consumer ``n``'s lead (to acme, the higher bid) and return the sale."""
    answer = sell(n, **kwargs)
    assert answer["status"] == "sold", answer
    with market_scope():
        return Sale.objects.select_related("lead").get(lead__public_id=answer["lead_id"])


def buyer_api(key: str = ACME_KEY):
    return client(key)
