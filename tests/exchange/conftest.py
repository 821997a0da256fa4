import pytest

from demo.buyers import BuyerSimulator
from tests.exchange.receiver import Receiver


@pytest.fixture(scope="session")
def buyer_server():
    simulator = BuyerSimulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture
def buyers(buyer_server):
    """The simulated buyers: one real local HTTP server for the run, with no behaviour and no
    request left over from an earlier test."""
    buyer_server.behaviours.clear()
    buyer_server.received.clear()
    return buyer_server


@pytest.fixture
def receiver():
    """A real local HTTP server that records what it is sent and answers as told."""
    running = Receiver().start()
    yield running
    running.stop()
