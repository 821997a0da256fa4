"""The consent certificate verifier: a TrustedForm certificate or Jornaya LeadiD claimed over HTTP.

Pluggable and off by default: ``GAVEL_CONSENT_VERIFIER_URL`` names the verifier (a vendor's claim
endpoint or the operator's own proxy to it), ``GAVEL_CONSENT_VERIFIER_TOKEN`` its bearer token. The
exchange POSTs ``{"trusted_form_cert_url": ..., "jornaya_leadid": ...}`` through the guarded
outbound client (core.outbound) and reads the answer:

* 2xx with ``{"valid": true}``: ``verified`` (+5 to the lead's score);
* 2xx with ``{"valid": false}``, or 404/410 (no such certificate): ``invalid`` (-25);
* anything else (timeout, refused, 5xx, an answer it cannot read): ``unreachable`` (no points: a
  verifier's outage must not mark good leads down).

Called at the post (or full lead), never at the ping: a ping's deadline has no room for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.conf import settings

from core.outbound import OutboundRequest, UnsafeUrl, http_send

VERIFIED, INVALID, UNREACHABLE = "verified", "invalid", "unreachable"


def certificate_verify(consent: Mapping[str, object]) -> str | None:
    """``verified``, ``invalid`` or ``unreachable``; None when the verifier is off or the consent
    carries neither a certificate nor a LeadiD."""
    url = getattr(settings, "GAVEL_CONSENT_VERIFIER_URL", "")
    cert, leadid = consent.get("trusted_form_cert_url"), consent.get("jornaya_leadid")
    if not url or not (cert or leadid):
        return None
    headers = {"content-type": "application/json"}
    token = getattr(settings, "GAVEL_CONSENT_VERIFIER_TOKEN", "")
    if token:
        headers["authorization"] = f"Bearer {token}"
    body = json.dumps({"trusted_form_cert_url": cert or None, "jornaya_leadid": leadid or None}).encode()
    try:
        response = http_send(
            OutboundRequest(
                url=url, body=body, headers=headers, timeout_s=settings.GAVEL_CONSENT_VERIFIER_TIMEOUT_MS / 1000
            )
        )
    except UnsafeUrl:
        return UNREACHABLE
    if response.status in (404, 410):
        return INVALID
    if response.status is None or not 200 <= response.status < 300:
        return UNREACHABLE
    try:
        answer = json.loads(response.body)
    except ValueError:
        return UNREACHABLE
    valid = answer.get("valid") if isinstance(answer, dict) else None
    if valid is True:
        return VERIFIED
    if valid is False:
        return INVALID
    return UNREACHABLE
