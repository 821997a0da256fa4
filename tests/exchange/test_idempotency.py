"""``Idempotency-Key`` on API POSTs (DESIGN.md §6), through a real DRF view."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import TenantAPIView
from accounts.models import ApiKey
from accounts.services import api_key_hash
from accounts.tenancy import market_scope
from exchange.api.errors import ApiError
from exchange.api.idempotency import (
    IdempotencyRecord,
    IdempotentPostMixin,
    idempotency_fingerprint,
    idempotency_records_purge,
)
from exchange.celery import app
from exchange.tasks import idempotency_records_purge_task
from tests.conftest import ACME_KEY, CHARLIE_KEY, LEADGEN_KEY, api_client

# Every handler run, in order: what the idempotency layer must prevent is a second entry here.
CALLS: list[dict[str, Any]] = []
# The "block" outcome parks the handler until the test lets it go (the concurrency test).
ENTERED = threading.Event()
RELEASE = threading.Event()


class IdemView(IdempotentPostMixin, TenantAPIView):
    required_scope = "leads"

    def post(self, request: Request) -> Response:
        CALLS.append(dict(request.data))
        nonce = secrets.token_hex(8)
        outcome = request.data.get("outcome", "created")
        if outcome == "block":
            ENTERED.set()
            RELEASE.wait(timeout=10)
        if outcome == "refused":
            raise ApiError(code="ping_mismatch", message=f"refused {nonce}", status_code=422)
        if outcome == "unavailable":
            return Response({"nonce": nonce}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        if outcome == "crash":
            raise RuntimeError("the handler blew up")
        return Response({"call": len(CALLS), "nonce": nonce, "payout": "24.00"}, status=status.HTTP_201_CREATED)

    def get(self, request: Request) -> Response:
        CALLS.append({"get": True})
        return Response({"call": len(CALLS)})


pytestmark = pytest.mark.urls("tests.exchange.idem_urls")

BODY = {"campaign": "cmp_leadgen_auto", "lead": {"state": "CA", "zip": "94107"}}


@pytest.fixture(autouse=True)
def _fresh_calls():
    CALLS.clear()
    ENTERED.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


def post(key: str, idem: str | None, body: dict[str, Any] = BODY, path: str = "/idem"):
    headers = {} if idem is None else {"Idempotency-Key": idem}
    return api_client(key).post(path, body, format="json", headers=headers)


def api_key_of(raw: str) -> ApiKey:
    with market_scope():
        return ApiKey.objects.get(key_hash=api_key_hash(raw))


def record_make(raw_key: str, key: str, *, age: timedelta = timedelta(0), **fields: Any) -> IdempotencyRecord:
    fields.setdefault("request_fingerprint", idempotency_fingerprint(method="POST", path="/idem", data=BODY))
    return IdempotencyRecord.objects.create(
        api_key=api_key_of(raw_key), key=key, created_at=timezone.now() - age, **fields
    )


def records() -> list[tuple[str, str, int | None]]:
    return sorted(IdempotencyRecord.objects.values_list("key", "state", "response_status"))


# --- replay ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_repeat_replays_the_first_answer_without_running_the_handler(market):
    first = post(LEADGEN_KEY, "order-1")
    again = post(LEADGEN_KEY, "order-1")

    assert first.status_code == 201
    assert first.json() == {"call": 1, "nonce": first.json()["nonce"], "payout": "24.00"}
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(CALLS) == 1
    assert records() == [("order-1", "done", 201)]


@pytest.mark.django_db
def test_the_same_json_written_differently_is_the_same_request(market):
    client = api_client(LEADGEN_KEY)
    headers = {"Idempotency-Key": "order-1"}
    first = client.post(
        "/idem", '{"b": [1, 2], "a": {"y": 1, "x": 2}}', content_type="application/json", headers=headers
    )
    again = client.post("/idem", '{"a":{"x":2,"y":1},"b":[1,2]}', content_type="application/json", headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert len(CALLS) == 1


@pytest.mark.django_db
def test_a_4xx_answer_is_stored_and_replayed(market):
    first = post(LEADGEN_KEY, "order-1", {"outcome": "refused"})
    again = post(LEADGEN_KEY, "order-1", {"outcome": "refused"})

    assert first.status_code == 422
    message = first.json()["error"]["message"]
    assert message.startswith("refused ")
    assert first.json() == {"error": {"code": "ping_mismatch", "message": message}}
    assert again.status_code == 422
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(CALLS) == 1
    assert records() == [("order-1", "done", 422)]


# --- conflicts ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_422_and_nothing_runs(market):
    first = post(LEADGEN_KEY, "order-1")
    other = post(LEADGEN_KEY, "order-1", {**BODY, "test": True})

    assert other.status_code == 422
    assert other.json() == {
        "error": {
            "code": "idempotency_key_reused",
            "message": "This Idempotency-Key was used with another request; use a new key for a new request.",
        }
    }
    assert len(CALLS) == 1
    # The first answer is untouched and still replayed.
    assert post(LEADGEN_KEY, "order-1").json() == first.json()
    assert records() == [("order-1", "done", 201)]


@pytest.mark.django_db
def test_the_same_key_and_body_on_another_path_is_a_422(market):
    post(LEADGEN_KEY, "order-1")
    other = post(LEADGEN_KEY, "order-1", path="/idem/other")

    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(CALLS) == 1


@pytest.mark.django_db
def test_the_same_key_under_another_api_key_is_independent(market):
    leadgen = post(LEADGEN_KEY, "order-1")
    charlie = post(CHARLIE_KEY, "order-1")

    assert (leadgen.status_code, charlie.status_code) == (201, 201)
    assert leadgen.json()["nonce"] != charlie.json()["nonce"]
    assert len(CALLS) == 2
    assert post(LEADGEN_KEY, "order-1").json() == leadgen.json()
    assert post(CHARLIE_KEY, "order-1").json() == charlie.json()
    assert len(CALLS) == 2


@pytest.mark.django_db
def test_a_repeat_while_the_first_is_running_is_a_409(market):
    record_make(LEADGEN_KEY, "order-1")

    response = post(LEADGEN_KEY, "order-1")

    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "idempotency_in_progress",
            "message": "A request with this Idempotency-Key is still being processed; retry later.",
        }
    }
    assert CALLS == []
    assert records() == [("order-1", "in_progress", None)]


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_duplicate_gets_a_409_while_the_first_runs(market):
    body = {**BODY, "outcome": "block"}
    answers: dict[str, Any] = {}

    def first_request() -> None:
        try:
            answers["first"] = post(LEADGEN_KEY, "order-1", body)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert ENTERED.wait(timeout=10), "the first request never reached its handler"
        duplicate = post(LEADGEN_KEY, "order-1", body)
    finally:
        RELEASE.set()
        thread.join(timeout=10)

    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "idempotency_in_progress"
    assert answers["first"].status_code == 201
    replay = post(LEADGEN_KEY, "order-1", body)
    assert replay.status_code == 201
    assert replay.json() == answers["first"].json()
    assert len(CALLS) == 1
    assert records() == [("order-1", "done", 201)]


# --- failures stay retryable -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_5xx_answer_is_not_stored_and_a_retry_runs_again(market):
    first = post(LEADGEN_KEY, "order-1", {"outcome": "unavailable"})
    assert first.status_code == 503
    assert records() == []

    retry = post(LEADGEN_KEY, "order-1", {"outcome": "unavailable"})

    assert retry.status_code == 503
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.json()["nonce"] != first.json()["nonce"]
    assert len(CALLS) == 2
    assert records() == []


@pytest.mark.django_db
def test_an_exception_releases_the_key_and_a_retry_runs_again(market):
    with pytest.raises(RuntimeError, match="blew up"):
        post(LEADGEN_KEY, "order-1", {"outcome": "crash"})
    assert records() == []

    # The client fixes nothing and retries under the same key: it must run, not get a 409.
    with pytest.raises(RuntimeError, match="blew up"):
        post(LEADGEN_KEY, "order-1", {"outcome": "crash"})
    assert len(CALLS) == 2
    assert records() == []


# --- expiry and purge --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "old",
    [
        {"state": "done", "response_status": 201, "response_body": {"stale": True}},
        {"state": "in_progress"},
        {"state": "done", "response_status": 201, "response_body": {"stale": True}, "request_fingerprint": "0" * 64},
    ],
    ids=["done", "stuck-in-progress", "other-body"],
)
def test_an_expired_record_is_treated_as_absent(market, old):
    stale = record_make(LEADGEN_KEY, "order-1", age=timedelta(hours=25), **old)

    response = post(LEADGEN_KEY, "order-1")

    assert response.status_code == 201
    assert response.json() == {"call": 1, "nonce": response.json()["nonce"], "payout": "24.00"}
    assert "Idempotent-Replayed" not in response.headers
    fresh = IdempotencyRecord.objects.get()
    assert fresh.pk != stale.pk
    assert timezone.now() - fresh.created_at < timedelta(minutes=1)
    assert (fresh.state, fresh.response_status, fresh.response_body) == ("done", 201, response.json())


@pytest.mark.django_db
def test_a_record_just_under_24_hours_old_still_replays(market):
    record_make(
        LEADGEN_KEY,
        "order-1",
        age=timedelta(hours=23, minutes=59),
        state="done",
        response_status=201,
        response_body={"call": 7},
    )

    response = post(LEADGEN_KEY, "order-1")

    assert response.status_code == 201
    assert response.json() == {"call": 7}
    assert response.headers["Idempotent-Replayed"] == "true"
    assert CALLS == []


@pytest.mark.django_db
def test_purge_deletes_only_records_past_their_24_hours(market):
    record_make(LEADGEN_KEY, "old-done", age=timedelta(hours=25), state="done", response_status=201)
    record_make(CHARLIE_KEY, "old-stuck", age=timedelta(hours=24, seconds=1))
    record_make(LEADGEN_KEY, "fresh", age=timedelta(hours=23))

    assert idempotency_records_purge() == 2
    assert records() == [("fresh", "in_progress", None)]
    assert idempotency_records_purge(older_than=timedelta(hours=1)) == 1
    assert records() == []


@pytest.mark.django_db
def test_the_purge_runs_hourly_on_celery_beat(market):
    record_make(LEADGEN_KEY, "old", age=timedelta(hours=25), state="done", response_status=201)
    record_make(LEADGEN_KEY, "fresh", age=timedelta(hours=23))
    entry = app.conf.beat_schedule["exchange.idempotency_records_purge"]
    assert (entry["task"], entry["schedule"]) == ("exchange.idempotency_records_purge", 3600.0)

    assert idempotency_records_purge_task.name == entry["task"]
    assert idempotency_records_purge_task.apply().get() == 1

    assert records() == [("fresh", "in_progress", None)]


# --- when the header does not apply ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["", "x" * 256, "clé", "tab\there"], ids=["empty", "too-long", "non-ascii", "control"])
def test_an_invalid_key_is_a_400_and_nothing_runs(market, bad):
    response = post(LEADGEN_KEY, bad)

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_idempotency_key",
            "message": "'Idempotency-Key' must be 1 to 255 printable ASCII characters.",
        }
    }
    assert CALLS == []
    assert records() == []


@pytest.mark.django_db
def test_a_255_character_key_with_spaces_and_punctuation_is_valid(market):
    key = ("a b-c_d.e~!" * 24)[:255]

    assert post(LEADGEN_KEY, key).status_code == 201
    assert post(LEADGEN_KEY, key).headers["Idempotent-Replayed"] == "true"
    assert len(CALLS) == 1


@pytest.mark.django_db
def test_without_the_header_the_handler_runs_every_time(market):
    first = post(LEADGEN_KEY, None)
    again = post(LEADGEN_KEY, None)

    assert (first.status_code, again.status_code) == (201, 201)
    assert (first.json()["call"], again.json()["call"]) == (1, 2)
    assert len(CALLS) == 2
    assert records() == []


@pytest.mark.django_db
def test_a_get_ignores_the_header(market):
    client = api_client(LEADGEN_KEY)
    answers = [client.get("/idem", headers={"Idempotency-Key": "order-1"}).json() for _ in range(2)]

    assert answers == [{"call": 1}, {"call": 2}]
    assert records() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, (401, "authentication_failed")),
        ("gvl_not_a_real_key_000000", (401, "authentication_failed")),
        (ACME_KEY, (403, "permission_denied")),
    ],
    ids=["no-key", "bad-key", "wrong-scope"],
)
def test_authentication_and_scope_come_before_the_key_is_claimed(market, key, expected):
    response = post(key, "order-1")

    assert (response.status_code, response.json()["error"]["code"]) == expected
    assert CALLS == []
    assert records() == []
    # Nothing was claimed: the rightful owner of the key can still use it.
    assert post(LEADGEN_KEY, "order-1").status_code == 201


def test_the_mixin_must_come_before_the_view_base_class():
    with pytest.raises(ImproperlyConfigured, match="before the API view base class"):

        class Wrong(TenantAPIView, IdempotentPostMixin):
            pass

    assert issubclass(type("Right", (IdempotentPostMixin, APIView), {}), APIView)


@pytest.mark.django_db
def test_deleting_the_api_key_deletes_its_records(market):
    record_make(LEADGEN_KEY, "order-1")
    record_make(CHARLIE_KEY, "order-1")

    with market_scope():
        api_key_of(LEADGEN_KEY).delete()

    assert list(IdempotencyRecord.objects.values_list("api_key__name", flat=True)) == ["all"]
