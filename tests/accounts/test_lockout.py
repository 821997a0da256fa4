"""Sign-in lockout (accounts/lockout.py, django-axes): five failed sign-ins for one account lock it
for fifteen minutes, on the portal and the admin; the page says until when; operators unlock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client

from accounts.models import User
from tests.sessions import PASSWORD

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
OWNER = "owner@acme.test"


def _sign_in(client: Client, email: str, password: str, path: str = "/login/") -> object:
    return client.post(path, {"username": email, "password": password}, REMOTE_ADDR="203.0.113.9")


def _fail(times: int, email: str = OWNER, path: str = "/login/") -> list[int]:
    client = Client()
    return [_sign_in(client, email, "wrong-password", path).status_code for _ in range(times)]


def test_five_failures_lock_the_account_fifteen_minutes_even_for_the_right_password(market):
    with time_machine.travel(START, tick=False) as clock:
        assert _fail(4) == [200, 200, 200, 200]  # the form again, "didn't match"
        assert _fail(1) == [429]  # the fifth locks

        client = Client()
        locked = _sign_in(client, OWNER, PASSWORD)
        page = locked.content.decode()
        assert locked.status_code == 429
        assert "5 failed sign-ins for <strong>owner@acme.test</strong>" in page
        assert "until\n    <strong>14:15 UTC</strong> (about 15 minutes from now)" in page
        assert "operator" in page and 'href="/login/"' in page
        assert "_auth_user_id" not in client.session  # not signed in

        clock.shift(timedelta(minutes=14))
        assert _sign_in(Client(), OWNER, PASSWORD).status_code == 429  # still locked (and not extended)

        clock.shift(timedelta(minutes=1, seconds=1))
        client = Client()
        signed_in = _sign_in(client, OWNER, PASSWORD)
        assert signed_in.status_code == 302 and signed_in["Location"] == "/portal/"
        assert client.session["_auth_user_id"] == str(User.objects.get(email=OWNER).pk)
    assert AccessAttempt.objects.count() == 0  # a success forgets the failures


def test_the_lock_is_per_account_whatever_the_address_or_the_case(market):
    client = Client()
    for n in range(5):  # five addresses, one account, typed two ways
        email = OWNER if n % 2 else " Owner@ACME.test"
        client.post("/login/", {"username": email, "password": "nope"}, REMOTE_ADDR=f"198.51.100.{n}")

    assert _sign_in(Client(), OWNER, PASSWORD).status_code == 429
    # Another account, from the same addresses, signs in.
    other = Client().post(
        "/login/", {"username": "owner@leadgen.test", "password": PASSWORD}, REMOTE_ADDR="198.51.100.1"
    )
    assert other.status_code == 302


def test_fewer_than_five_failures_then_a_success_start_the_count_again(market):
    assert _fail(4) == [200] * 4
    assert _sign_in(Client(), OWNER, PASSWORD).status_code == 302
    assert _fail(4) == [200] * 4
    assert _sign_in(Client(), OWNER, PASSWORD).status_code == 302


def test_the_admin_login_locks_too_and_shares_the_count(market, operator_client):
    path = "/admin/login/?next=/admin/"
    assert _fail(3, "op@gavel.test", path) == [200, 200, 200]
    assert _fail(2, "op@gavel.test") == [200, 429]  # the portal's login counts for the same account

    locked = _sign_in(Client(), "op@gavel.test", PASSWORD, path)
    assert locked.status_code == 429
    assert 'href="/admin/login/"' in locked.content.decode()


def test_an_operator_unlocks_an_account_from_the_admin(market, operator_client):
    _fail(5)
    assert _sign_in(Client(), OWNER, PASSWORD).status_code == 429
    user = User.objects.get(email=OWNER)

    done = operator_client.post(
        "/admin/accounts/user/", {"action": "unlock_sign_in", "_selected_action": [user.pk]}, follow=True
    )

    assert "Unlocked: owner@acme.test. They can sign in again now." in done.content.decode()
    assert AccessAttempt.objects.filter(username=OWNER).count() == 0
    assert _sign_in(Client(), OWNER, PASSWORD).status_code == 302


def test_unlocking_an_account_that_is_not_locked_says_so(market, operator_client):
    user = User.objects.get(email=OWNER)
    done = operator_client.post(
        "/admin/accounts/user/", {"action": "unlock_sign_in", "_selected_action": [user.pk]}, follow=True
    )
    assert "None of the selected users had failed sign-ins to forget." in done.content.decode()


def test_axes_attempts_are_listed_for_operators(market, operator_client):
    _fail(5)
    page = operator_client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and OWNER in page.content.decode()
