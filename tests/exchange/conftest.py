import subprocess

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


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1, made now: (cert path, key path)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)
