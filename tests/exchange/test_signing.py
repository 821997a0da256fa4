"""Standard Webhooks signing, checked with the reference library."""

from __future__ import annotations

import base64
import json
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from exchange.signing import SignatureInvalid, secret_new, sign, signed_headers, verify

BODY = json.dumps({"id": "evt_1", "type": "lead.sold", "data": {"payout": "24.00"}}).encode()


# --- signing ----------------------------------------------------------------------------------


def test_secret_is_whsec_and_32_random_bytes():
    first, second = secret_new(), secret_new()

    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_signature_is_what_the_reference_library_computes():
    secret = secret_new()
    ours = sign(secret=secret, msg_id="msg_1", timestamp=1_700_000_000, body=BODY)

    from datetime import UTC, datetime

    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(1_700_000_000, tz=UTC), BODY.decode())
    assert ours == theirs
    assert ours.startswith("v1,")


def test_signed_headers_verify_with_standardwebhooks():
    secret = secret_new()
    headers = signed_headers(secret=secret, body=BODY, msg_id="evt_abc")

    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-id"] == "evt_abc"
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) <= 2


def test_a_fresh_message_id_when_none_is_given():
    secret = secret_new()
    first = signed_headers(secret=secret, body=BODY)["webhook-id"]
    second = signed_headers(secret=secret, body=BODY)["webhook-id"]

    assert first.startswith("msg_") and second.startswith("msg_") and first != second


def test_one_byte_changed_fails():
    secret = secret_new()
    headers = signed_headers(secret=secret, body=BODY)
    tampered = BODY.replace(b"24.00", b"25.00")

    assert len(tampered) == len(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    with pytest.raises(SignatureInvalid):
        verify(secret=secret, body=tampered, headers=headers)


def test_a_timestamp_six_minutes_old_fails():
    secret = secret_new()
    headers = signed_headers(secret=secret, body=BODY, now=time.time() - 6 * 60)

    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(SignatureInvalid):
        verify(secret=secret, body=BODY, headers=headers)


def test_a_wrong_secret_fails():
    headers = signed_headers(secret=secret_new(), body=BODY)

    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret_new()).verify(BODY, headers)


def test_a_rotated_out_secret_still_verifies_while_it_signs_too():
    old, new = secret_new(), secret_new()
    headers = signed_headers(secret=new, extra_secrets=[old], body=BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(BODY, headers)
    Webhook(old).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_new()).verify(BODY, headers)


def test_our_verify_accepts_what_we_sign():
    secret = secret_new()
    verify(secret=secret, body=BODY, headers=signed_headers(secret=secret, body=BODY))
    with pytest.raises(SignatureInvalid, match="Missing"):
        verify(secret=secret, body=BODY, headers={"webhook-id": "x"})
