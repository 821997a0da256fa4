"""Rotating the PII key re-encrypts every lead under the newest key, and nothing is lost."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from accounts.tenancy import market_scope
from leads.crypto import PiiKeyError, pii_decrypt
from leads.models import Lead
from tests.exchange.builder import buyer, load, sell

pytestmark = pytest.mark.django_db


def test_rotation_moves_every_lead_to_the_new_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.GAVEL_PII_KEYS = [old]
    load(buyer("a", "30.00"), buyer("b", "20.00"))
    sold = [sell(n)["lead_id"] for n in range(3)]

    settings.GAVEL_PII_KEYS = [new, old]
    out = StringIO()
    call_command("pii_rotate", stdout=out)
    assert "3" in out.getvalue()

    settings.GAVEL_PII_KEYS = [new]
    with market_scope():
        leads = {lead.public_id: lead for lead in Lead.objects.filter(public_id__in=sold)}
    for n, lead_id in enumerate(sold):
        assert pii_decrypt(leads[lead_id].pii_encrypted)["email"] == f"consumer{n}@example.com"
    settings.GAVEL_PII_KEYS = [old]
    with pytest.raises(PiiKeyError):
        pii_decrypt(leads[sold[0]].pii_encrypted)
