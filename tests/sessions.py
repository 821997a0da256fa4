"""Browser sessions for the portal and admin tests: a user who logs in with the test password."""

from __future__ import annotations

from django.test import Client

from accounts.models import Organization
from accounts.services import membership_set, user_upsert

PASSWORD = "correct-horse-battery"


def login(email: str) -> Client:
    """A browser session of the user ``email`` (who has the test password)."""
    client = Client()
    assert client.login(username=email, password=PASSWORD)
    return client


def member(email: str, slug: str, role: str = "owner") -> Client:
    """A browser session of ``email``, made a member of the organization ``slug`` with ``role``."""
    membership_set(
        user=user_upsert(email=email, password=PASSWORD), organization=Organization.objects.get(slug=slug), role=role
    )
    return login(email)
