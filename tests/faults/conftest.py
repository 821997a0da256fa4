"""The fault drills reuse the exchange tests' simulated buyers (one local HTTP server for the run)."""

from tests.exchange.conftest import buyer_server, buyers  # noqa: F401 - fixtures
