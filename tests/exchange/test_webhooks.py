"""Event webhooks end to end, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from accounts.models import Membership, User
from accounts.tenancy import market_scope, tenant_scope
from exchange.webhooks import (
    Event,
    EventAttempt,
    EventDelivery,
    WebhookEndpoint,
    WebhookError,
    delivery_attempt,
    delivery_replay,
    endpoint_create,
    endpoint_disable,
    endpoint_secret_rotate,
    event_emit,
)
from exchange.webhooks import services as webhooks
from exchange.webhooks.models import GONE_REASON
from exchange.webhooks.tasks import webhook_deliver, webhook_deliveries_due
from tests.exchange.receiver import Receiver
from tests.sessions import PASSWORD, login

DATA = {"lead_id": "led_1", "status": "sold", "payout": "24.00", "test": False}


@pytest.fixture(autouse=True)
def _schedule(settings):
    """A predictable schedule: 30 s, 60 s, 120 s… with no jitter, three attempts at most."""
    settings.GAVEL_WEBHOOKS = {
        "retry_base_seconds": 30,
        "retry_factor": 2,
        "retry_jitter": 0,
        "max_attempts": 3,
        "timeout_seconds": 2,
    }


@pytest.fixture
def acme(orgs):
    return orgs["acme"]


def add_endpoint(organization, url, event_types=None) -> tuple[WebhookEndpoint, str]:
    with tenant_scope(organization):
        return endpoint_create(organization=organization, url=url, event_types=event_types)


def emit(organization, django_capture_on_commit_callbacks, type="lead.sold", data=DATA) -> Event:
    """Emit as the exchange does, keeping the queued sends (tests run them explicitly)."""
    with django_capture_on_commit_callbacks(execute=False):
        return event_emit(organization_id=organization.pk, type=type, data=data)


def deliveries(**filters) -> list[EventDelivery]:
    with market_scope():
        return list(EventDelivery.objects.filter(**filters).order_by("pk"))


def one_delivery(event: Event) -> EventDelivery:
    (delivery,) = deliveries(event=event)
    return delivery


def deliver(delivery: EventDelivery) -> str:
    """One run of the task, in-process (as eager mode or the sweeper runs it)."""
    return webhook_deliver.apply(
        kwargs={"delivery_id": delivery.pk, "organization_id": delivery.organization_id}, throw=True
    ).get()


def fresh(delivery: EventDelivery) -> EventDelivery:
    with market_scope():
        return EventDelivery.objects.get(pk=delivery.pk)


def attempts_of(delivery: EventDelivery) -> list[tuple[int, int | None]]:
    with market_scope():
        return list(EventAttempt.objects.filter(delivery=delivery).values_list("number", "status_code"))


def wait_after(delivery: EventDelivery) -> float:
    """Seconds from the start of the delivery's last attempt to its next one (the backoff plus the POST)."""
    delivery = fresh(delivery)
    with market_scope():
        last = EventAttempt.objects.get(delivery=delivery, number=delivery.attempts)
    return (delivery.next_attempt_at - last.at).total_seconds()


def make_due(delivery: EventDelivery) -> None:
    """Move the clock: the scheduled retry is due now."""
    with market_scope():
        EventDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# --- emitting ---------------------------------------------------------------------------------


def test_an_event_reaches_the_receiver_signed_by_standard_webhooks(acme, receiver, django_capture_on_commit_callbacks):
    endpoint, secret = add_endpoint(acme, receiver.url)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        event = event_emit(organization_id=acme.pk, type="lead.sold", data=DATA)
    delivery = one_delivery(event)
    status = deliver(delivery)

    assert len(queued) == 1
    assert status == "succeeded"
    (request,) = receiver.requests
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload == {
        "id": event.public_id,
        "type": "lead.sold",
        "created": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": DATA,
    }
    assert event.public_id.startswith("evt_")
    assert request.headers["webhook-id"] == event.public_id
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hooks/gavel"
    delivery = fresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.next_attempt_at is None
    assert delivery.last_latency_ms is not None
    assert attempts_of(delivery) == [(1, 200)]


def test_what_the_receiver_got_fails_verification_when_tampered_stale_or_keyed_wrong(
    acme, receiver, django_capture_on_commit_callbacks
):
    _, secret = add_endpoint(acme, receiver.url)
    deliver(one_delivery(emit(acme, django_capture_on_commit_callbacks)))
    (request,) = receiver.requests

    tampered = bytearray(request.body)
    tampered[-3] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(bytes(tampered), request.headers)
    stale = {**request.headers, "webhook-timestamp": str(int(request.headers["webhook-timestamp"]) - 6 * 60)}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body, stale)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.secret_new()).verify(request.body, request.headers)


def test_emit_in_a_transaction_that_rolls_back_queues_nothing(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)

    with django_capture_on_commit_callbacks(execute=True) as queued:
        with pytest.raises(RuntimeError), transaction.atomic():
            event_emit(organization_id=acme.pk, type="lead.sold", data=DATA)
            raise RuntimeError("the sale failed")

    assert queued == []
    assert receiver.requests == []
    with market_scope():
        assert Event.objects.count() == 0
        assert EventDelivery.objects.count() == 0


def test_the_send_is_queued_only_when_the_transaction_commits(
    acme, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    add_endpoint(acme, receiver.url)
    sent: list[dict] = []
    monkeypatch.setattr(webhook_deliver, "apply_async", lambda **options: sent.append(options))

    with django_capture_on_commit_callbacks(execute=False) as queued:
        with transaction.atomic():
            event = event_emit(organization_id=acme.pk, type="lead.sold", data=DATA)
        assert sent == []  # the test's own transaction has not committed yet
    for callback in queued:
        callback()

    delivery = one_delivery(event)
    assert sent == [{"kwargs": {"delivery_id": delivery.pk, "organization_id": acme.pk}}]
    assert receiver.requests == []


def test_only_active_endpoints_of_the_organization_that_take_the_type_get_a_delivery(
    orgs, receiver, django_capture_on_commit_callbacks
):
    acme, charlie = orgs["acme"], orgs["charlie"]
    every, _ = add_endpoint(acme, receiver.url + "/all")
    returns_only, _ = add_endpoint(acme, receiver.url + "/returns", ["lead.returned"])
    sold_and_returns, _ = add_endpoint(acme, receiver.url + "/sold", ["lead.sold", "lead.returned"])
    off, _ = add_endpoint(acme, receiver.url + "/off")
    add_endpoint(charlie, receiver.url + "/charlie")
    with tenant_scope(acme):
        endpoint_disable(endpoint=off)

    event = emit(acme, django_capture_on_commit_callbacks)

    assert [d.endpoint_id for d in deliveries(event=event)] == [every.pk, sold_and_returns.pk]
    assert {d.msg_id for d in deliveries(event=event)} == {event.public_id}
    assert {d.organization_id for d in deliveries(event=event)} == {acme.pk}


def test_an_unknown_event_type_is_refused(acme):
    with pytest.raises(WebhookError):
        event_emit(organization_id=acme.pk, type="lead.exploded", data={})
    with market_scope():
        assert Event.objects.count() == 0


# --- exactly once per attempt -----------------------------------------------------------------


def test_running_the_task_twice_in_a_row_sends_once(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    assert deliver(delivery) == "succeeded"
    assert deliver(delivery) == "succeeded"

    assert len(receiver.requests) == 1
    assert fresh(delivery).attempts == 1
    assert attempts_of(delivery) == [(1, 200)]


def test_a_duplicate_task_before_the_retry_is_due_sends_nothing(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    receiver.answer(500)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    deliver(delivery)
    deliver(delivery)

    assert len(receiver.requests) == 1
    assert (fresh(delivery).status, fresh(delivery).attempts) == ("pending", 1)


def test_a_second_worker_starting_while_the_first_is_sending_sends_nothing(
    acme, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    """The interleaving forced in one thread: the second run starts in the middle of the first POST."""
    add_endpoint(acme, receiver.url)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    real_send = webhooks.http_send
    inner: list[str] = []

    def send_with_a_rival(*args, **kwargs):
        if not inner:
            inner.append(deliver(delivery))
        return real_send(*args, **kwargs)

    monkeypatch.setattr(webhooks, "http_send", send_with_a_rival)

    assert deliver(delivery) == "succeeded"
    assert inner == ["sending"]
    assert len(receiver.requests) == 1
    assert attempts_of(delivery) == [(1, 200)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="needs real concurrent connections",
)
def test_two_workers_at_once_send_once(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    receiver.delay = 0.3
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    barrier = threading.Barrier(4)
    results: list[str] = []

    def worker():
        try:
            barrier.wait()
            results.append(deliver(delivery))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(receiver.requests) == 1
    assert sorted(results).count("succeeded") >= 1
    assert fresh(delivery).attempts == 1
    assert attempts_of(delivery) == [(1, 200)]


def test_a_delivery_of_another_organization_is_not_touched(orgs, receiver, django_capture_on_commit_callbacks):
    add_endpoint(orgs["acme"], receiver.url)
    delivery = one_delivery(emit(orgs["acme"], django_capture_on_commit_callbacks))

    status = webhook_deliver.apply(kwargs={"delivery_id": delivery.pk, "organization_id": orgs["charlie"].pk}).get()

    assert status == "missing"
    assert receiver.requests == []
    assert fresh(delivery).attempts == 0


# --- retries ----------------------------------------------------------------------------------


def test_retries_with_backoff_until_the_receiver_accepts(acme, receiver, django_capture_on_commit_callbacks):
    _, secret = add_endpoint(acme, receiver.url)
    receiver.answer(500, 500, 200)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    assert deliver(delivery) == "pending"
    first = fresh(delivery)
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
    assert 30 <= wait_after(delivery) <= 31
    assert webhook_deliveries_due() == 0  # not due yet
    assert len(receiver.requests) == 1

    make_due(delivery)
    assert webhook_deliveries_due() == 1
    second = fresh(delivery)
    assert (second.status, second.attempts, second.last_status_code) == ("pending", 2, 500)
    assert 60 <= wait_after(delivery) <= 61

    make_due(delivery)
    assert webhook_deliveries_due() == 1
    third = fresh(delivery)
    assert (third.status, third.attempts, third.last_status_code, third.next_attempt_at) == ("succeeded", 3, 200, None)

    assert attempts_of(delivery) == [(1, 500), (2, 500), (3, 200)]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.msg_id] * 3
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    assert len({r.body for r in receiver.requests}) == 1


def test_a_worker_queues_the_retry_with_its_backoff_as_countdown(
    acme, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    add_endpoint(acme, receiver.url)
    receiver.answer(503)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    queued: list[dict] = []
    monkeypatch.setattr(webhook_deliver, "apply_async", lambda **options: queued.append(options))

    # Called directly, the task runs as a worker runs it (not eagerly).
    webhook_deliver(delivery_id=delivery.pk, organization_id=acme.pk)

    assert len(queued) == 1
    assert queued[0]["kwargs"] == {"delivery_id": delivery.pk, "organization_id": acme.pk}
    assert 29 <= queued[0]["countdown"] <= 30


def test_eagerly_the_task_leaves_the_retry_to_the_sweeper(
    acme, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    add_endpoint(acme, receiver.url)
    receiver.answer(503)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    queued: list[dict] = []
    monkeypatch.setattr(webhook_deliver, "apply_async", lambda **options: queued.append(options))

    deliver(delivery)

    assert queued == []
    assert fresh(delivery).status == "pending"


def test_retry_after_from_the_receiver_lengthens_the_wait(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    receiver.answer(429, headers={"Retry-After": "600"})
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    deliver(delivery)

    assert 600 <= wait_after(delivery) <= 601


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(acme, receiver, django_capture_on_commit_callbacks):
    elsewhere = Receiver().start()
    try:
        add_endpoint(acme, receiver.url)
        receiver.answer(307, body=b"moved", headers={"location": elsewhere.url})
        delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

        assert deliver(delivery) == "pending"

        assert len(receiver.requests) == 1
        assert elsewhere.requests == []
        assert attempts_of(delivery) == [(1, 307)]
        failed = fresh(delivery)
        assert (failed.status, failed.last_status_code, failed.last_response) == ("pending", 307, "")
        assert failed.last_error == f"Redirect not followed: {elsewhere.url}"
        assert wait_after(delivery) >= 30
    finally:
        elsewhere.stop()


def test_a_timeout_and_a_refused_connection_are_failed_attempts(
    acme, receiver, settings, django_capture_on_commit_callbacks
):
    settings.GAVEL_WEBHOOKS = {**settings.GAVEL_WEBHOOKS, "timeout_seconds": 0.3}
    add_endpoint(acme, receiver.url)
    receiver.delay = 1
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    deliver(delivery)
    timed_out = fresh(delivery)
    receiver.stop()
    make_due(delivery)
    deliver(delivery)
    refused = fresh(delivery)

    assert (timed_out.status, timed_out.last_status_code) == ("pending", None)
    assert timed_out.last_error.startswith("Timed out")
    assert (refused.status, refused.attempts) == ("pending", 2)
    assert refused.last_error.startswith(f"Failed to connect to 127.0.0.1:{receiver.port}")


def test_the_answer_is_kept_truncated_to_2_kb(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    receiver.answer(500, body=b"e" * 5000)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    deliver(delivery)

    with market_scope():
        attempt = EventAttempt.objects.get(delivery=delivery)
    assert attempt.response == "e" * 2048
    assert fresh(delivery).last_response == "e" * 2048


def test_410_disables_the_endpoint_and_stops(acme, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = add_endpoint(acme, receiver.url)
    receiver.answer(410)
    first = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    second = one_delivery(emit(acme, django_capture_on_commit_callbacks, type="lead.unsold"))

    assert deliver(first) == "given_up"
    assert deliver(second) == "given_up"
    third_event = emit(acme, django_capture_on_commit_callbacks, type="lead.returned")

    with market_scope():
        endpoint.refresh_from_db()
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", GONE_REASON)
    assert len(receiver.requests) == 1
    assert (fresh(first).status, fresh(first).attempts, fresh(first).last_status_code) == ("given_up", 1, 410)
    assert (fresh(second).status, fresh(second).attempts) == ("given_up", 0)
    assert fresh(second).last_error == f"Endpoint disabled: {GONE_REASON}"
    assert deliveries(event=third_event) == []
    assert webhook_deliveries_due() == 0


def test_gives_up_after_the_last_attempt_then_a_replay_succeeds(acme, receiver, django_capture_on_commit_callbacks):
    _, secret = add_endpoint(acme, receiver.url)
    receiver.answer(500, 502, 500, 200)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    deliver(delivery)
    for _ in range(2):
        make_due(delivery)
        webhook_deliveries_due()
    given_up = fresh(delivery)
    assert (given_up.status, given_up.attempts, given_up.next_attempt_at) == ("given_up", 3, None)
    assert webhook_deliveries_due() == 0
    assert len(receiver.requests) == 3

    with tenant_scope(acme), django_capture_on_commit_callbacks(execute=False) as queued:
        replayed = delivery_replay(delivery=given_up)
    assert (replayed.status, replayed.attempts) == ("pending", 3)
    assert len(queued) == 1
    assert deliver(delivery) == "succeeded"

    assert attempts_of(delivery) == [(1, 500), (2, 502), (3, 500), (4, 200)]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.msg_id] * 4
    Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)


def test_a_delivery_still_on_its_way_cannot_be_replayed(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))

    with tenant_scope(acme), pytest.raises(WebhookError):
        delivery_replay(delivery=delivery)

    assert (fresh(delivery).status, fresh(delivery).attempts) == ("pending", 0)


def test_a_replayed_delivery_gets_a_fresh_series_of_attempts(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    receiver.answer(500, 500, 500, 500)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    deliver(delivery)
    for _ in range(2):
        make_due(delivery)
        webhook_deliveries_due()

    with tenant_scope(acme), django_capture_on_commit_callbacks(execute=False):
        delivery_replay(delivery=fresh(delivery))
    deliver(delivery)

    assert (fresh(delivery).status, fresh(delivery).attempts) == ("pending", 4)
    assert 30 <= wait_after(delivery) <= 31


def test_a_crashed_worker_leaves_a_lease_the_sweeper_takes_over(acme, receiver, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    with market_scope():
        # As the claim leaves it when the worker dies in the middle of the POST.
        EventDelivery.objects.filter(pk=delivery.pk).update(
            status="sending", attempts=1, next_attempt_at=timezone.now() + timedelta(seconds=70)
        )
    assert webhook_deliveries_due() == 0

    make_due(delivery)
    assert webhook_deliveries_due() == 1

    assert (fresh(delivery).status, fresh(delivery).attempts) == ("succeeded", 2)
    assert attempts_of(delivery) == [(2, 200)]


def test_after_a_secret_rotation_both_secrets_verify_for_a_day(acme, receiver, django_capture_on_commit_callbacks):
    endpoint, old = add_endpoint(acme, receiver.url)
    with tenant_scope(acme):
        new = endpoint_secret_rotate(endpoint=endpoint)
    deliver(one_delivery(emit(acme, django_capture_on_commit_callbacks)))
    with market_scope():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    deliver(one_delivery(emit(acme, django_capture_on_commit_callbacks)))

    first, second = receiver.requests
    assert new != old
    Webhook(new).verify(first.body, first.headers)
    Webhook(old).verify(first.body, first.headers)
    Webhook(new).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(second.body, second.headers)


def test_an_unsafe_url_is_refused_when_private_urls_are_off(acme, settings):
    settings.GAVEL_ALLOW_PRIVATE_URLS = False

    with pytest.raises(WebhookError):
        add_endpoint(acme, "http://127.0.0.1:9000/hook")
    with pytest.raises(WebhookError):
        add_endpoint(acme, "ftp://example.com/hook")
    with market_scope():
        assert WebhookEndpoint.objects.count() == 0


def test_a_url_that_turned_private_fails_at_send_time(acme, receiver, settings, django_capture_on_commit_callbacks):
    add_endpoint(acme, receiver.url)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    settings.GAVEL_ALLOW_PRIVATE_URLS = False

    deliver(delivery)

    assert receiver.requests == []
    assert fresh(delivery).last_error.startswith("Refused URL")
    assert fresh(delivery).status == "pending"


# --- portal -----------------------------------------------------------------------------------


@pytest.fixture
def analyst(acme):
    user = User.objects.create_user("analyst@acme.test", PASSWORD)
    Membership.objects.create(user=user, organization=acme, role=Membership.Role.ANALYST)
    return login("analyst@acme.test")


def test_an_owner_adds_an_endpoint_and_sees_its_secret_once(acme, receiver):
    client = login("owner@acme.test")

    added = client.post("/portal/webhooks/", {"url": receiver.url, "event_types": ["lead.sold", "lead.returned"]})

    with market_scope():
        endpoint = WebhookEndpoint.objects.get(organization=acme)
    assert added.status_code == 200
    assert endpoint.secret.encode() in added.content
    assert endpoint.event_types == ["lead.sold", "lead.returned"]
    page = client.get("/portal/webhooks/")
    assert page.status_code == 200
    assert receiver.url.encode() in page.content
    assert endpoint.secret.encode() not in page.content


def test_the_portal_refuses_a_bad_url_and_creates_nothing(acme):
    response = login("owner@acme.test").post("/portal/webhooks/", {"url": "ftp://example.com/x"})

    assert response.status_code == 422
    assert b"http" in response.content
    with market_scope():
        assert WebhookEndpoint.objects.count() == 0


def test_an_owner_rotates_disables_and_replays(acme, receiver, django_capture_on_commit_callbacks):
    endpoint, old = add_endpoint(acme, receiver.url)
    receiver.answer(500, 500, 500)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    deliver(delivery)
    for _ in range(2):
        make_due(delivery)
        webhook_deliveries_due()
    client = login("owner@acme.test")

    page = client.get("/portal/webhooks/")
    assert delivery.msg_id.encode() in page.content
    assert f"/portal/webhooks/deliveries/{delivery.public_id}/replay/".encode() in page.content

    rotated = client.post(f"/portal/webhooks/{endpoint.public_id}/rotate/")
    with market_scope():
        endpoint.refresh_from_db()
    assert rotated.status_code == 200
    assert endpoint.secret != old and endpoint.secret.encode() in rotated.content

    with django_capture_on_commit_callbacks(execute=False) as queued:
        replayed = client.post(f"/portal/webhooks/deliveries/{delivery.public_id}/replay/")
    assert replayed.status_code == 302
    assert fresh(delivery).status == "pending"
    assert len(queued) == 1

    disabled = client.post(f"/portal/webhooks/{endpoint.public_id}/disable/")
    with market_scope():
        endpoint.refresh_from_db()
    assert disabled.status_code == 302
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", "Disabled by the organization")


def test_an_outsider_gets_404_for_another_organizations_endpoint_and_delivery(
    acme, receiver, django_capture_on_commit_callbacks
):
    endpoint, secret = add_endpoint(acme, receiver.url)
    receiver.answer(410)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    deliver(delivery)
    with tenant_scope(acme):
        webhooks.endpoint_enable(endpoint=endpoint)
    charlie = login("charlie@charlie.test")

    for action in ("disable", "enable", "rotate"):
        assert charlie.post(f"/portal/webhooks/{endpoint.public_id}/{action}/").status_code == 404
    assert charlie.post(f"/portal/webhooks/deliveries/{delivery.public_id}/replay/").status_code == 404
    page = charlie.get("/portal/webhooks/")
    assert page.status_code == 200
    assert endpoint.public_id.encode() not in page.content
    assert delivery.msg_id.encode() not in page.content

    with market_scope():
        endpoint.refresh_from_db()
    assert (endpoint.status, endpoint.secret) == ("active", secret)
    assert fresh(delivery).status == "given_up"


def test_an_analyst_sees_the_page_but_cannot_change_anything(
    acme, analyst, receiver, django_capture_on_commit_callbacks
):
    endpoint, secret = add_endpoint(acme, receiver.url)
    receiver.answer(410)
    delivery = one_delivery(emit(acme, django_capture_on_commit_callbacks))
    deliver(delivery)

    page = analyst.get("/portal/webhooks/")
    assert page.status_code == 200
    assert receiver.url.encode() in page.content
    assert b"Add an endpoint" not in page.content

    assert analyst.post("/portal/webhooks/", {"url": receiver.url + "/2"}).status_code == 403
    for action in ("disable", "enable", "rotate"):
        assert analyst.post(f"/portal/webhooks/{endpoint.public_id}/{action}/").status_code == 403
    assert analyst.post(f"/portal/webhooks/deliveries/{delivery.public_id}/replay/").status_code == 403

    with market_scope():
        endpoint.refresh_from_db()
        assert WebhookEndpoint.objects.count() == 1
    assert (endpoint.status, endpoint.secret) == ("disabled", secret)
    assert fresh(delivery).status == "given_up"


def test_the_portal_page_needs_a_login(db):
    response = Client().get("/portal/webhooks/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_delivery_attempt_of_a_missing_delivery_is_a_no_op(db):
    with market_scope():
        assert delivery_attempt(delivery_id=999_999).status == "missing"


def test_a_buyers_owner_finds_the_secret_that_signs_its_rtb_and_delivery_requests(acme, analyst):
    page = login("owner@acme.test").get("/portal/webhooks/").content.decode()

    assert "Your RTB and delivery signing secret" in page
    assert acme.signing_secret in page
    assert acme.signing_secret not in analyst.get("/portal/webhooks/").content.decode()  # owners and managers only
