"""Fixtures of the exchange tests that the privacy tests use too (a simulated buyer, a webhook receiver)."""

from tests.exchange.conftest import buyer_server, buyers, receiver  # noqa: F401
