"""``Idempotency-Key`` on API POSTs, as Stripe and the IETF draft define it (DESIGN.md §6).

A key is scoped to the API key that sent it and kept 24 hours. A repeat with the same key and
the same request (method, path and JSON body) replays the first answer with
``Idempotent-Replayed: true``; the same key with another request is a 422
``idempotency_key_reused``; a repeat while the first is still running is a 409
``idempotency_in_progress``. A POST without the header behaves as if this module did not exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, IntegrityError, models, transaction
from django.http import HttpResponseBase
from django.utils import timezone
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey
from exchange.api.errors import ApiError

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# Losing the claim race to a delete-and-reclaim of an expired record more than this many times
# in a row means another request is hammering the same key: answer as "in progress".
_CLAIM_ATTEMPTS = 3


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` of one API key: claimed before the handler runs, then its answer.

    Not a tenant model: it is keyed by the API key itself, which already belongs to one tenant.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and canonical body.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = models.Manager()

    class Meta:
        app_label = "exchange"
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_record_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


def idempotency_fingerprint(*, method: str, path: str, data: Any) -> str:
    """SHA-256 hex of the request as the client meant it.

    The body is canonical JSON (sorted keys, no whitespace), so a client that re-serializes the
    same payload differently on retry still matches.
    """
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{body}".encode()).hexdigest()


def idempotency_records_purge(*, older_than: timedelta = IDEMPOTENCY_TTL) -> int:
    """Delete every record created more than ``older_than`` ago; return how many went.

    Safe to run at any time: an expired record is already treated as absent by the API.
    """
    _, deleted = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted.get(IdempotencyRecord._meta.label, 0)


def _key_validate(value: str) -> None:
    if not 1 <= len(value) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all(" " <= c <= "~" for c in value):
        raise ApiError(
            code="invalid_idempotency_key",
            message=f"'{IDEMPOTENCY_HEADER}' must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters.",
            status_code=status.HTTP_400_BAD_REQUEST,
        )


def _claim(*, api_key: ApiKey, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """The record for ``key``, and whether this request just claimed it (and so must run)."""
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            # Its own short transaction, committed before the handler runs, so that a concurrent
            # duplicate sees the claim instead of running the handler a second time.
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(api_key=api_key, key=key, request_fingerprint=fingerprint)
            return record, True
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is None:
            continue  # released (5xx) or purged since our INSERT failed
        if existing.created_at > timezone.now() - IDEMPOTENCY_TTL:
            return existing, False
        # Expired: absent to the client. Delete only that very row, so two requests racing to
        # re-claim cannot delete each other's fresh claim.
        IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
    raise _in_progress()


def _in_progress() -> ApiError:
    return ApiError(
        code="idempotency_in_progress",
        message="A request with this Idempotency-Key is still being processed; retry later.",
        status_code=status.HTTP_409_CONFLICT,
    )


class _Replay(Exception):
    """Skips the handler: the answer is already known."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


if TYPE_CHECKING:
    _ViewBase = APIView
else:
    _ViewBase = object


class IdempotentPostMixin(_ViewBase):
    """``Idempotency-Key`` support for a view's POST; list it before the view base class.

    ``class PingView(IdempotentPostMixin, TenantAPIView): ...``

    Guarantees, for a POST that sends the header: authentication, permissions, throttling and
    body parsing run first (their errors are never stored); then the key is claimed for
    ``request.auth`` (the ``ApiKey``) in a committed INSERT before the handler runs, so the
    handler runs at most once per key and request within 24 hours. Any answer below 500 is
    stored and replayed with the same status and JSON value (not its other headers; PostgreSQL's
    jsonb may reorder object keys); a 5xx or an uncaught exception releases the claim, so the
    client may retry. Needs autocommit around the view (no ``ATOMIC_REQUESTS``):
    inside an outer transaction a concurrent duplicate could not see the claim.
    """

    _idempotency_claim: IdempotencyRecord | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if APIView in mro and mro.index(APIView) < mro.index(IdempotentPostMixin):
            # APIView.initial does not call super(): a mixin listed after it would never run.
            raise ImproperlyConfigured(f"{cls.__name__}: list IdempotentPostMixin before the API view base class.")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or key is None:
            return
        _key_validate(key)
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise ImproperlyConfigured(f"{type(self).__name__}: IdempotentPostMixin needs API-key authentication.")
        fingerprint = idempotency_fingerprint(method=request.method, path=request.get_full_path(), data=request.data)
        record, claimed = _claim(api_key=api_key, key=key, fingerprint=fingerprint)
        if claimed:
            self._idempotency_claim = record
            return
        if record.request_fingerprint != fingerprint:
            raise ApiError(
                code="idempotency_key_reused",
                message="This Idempotency-Key was used with another request; use a new key for a new request.",
                status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if record.state != IdempotencyRecord.State.DONE or record.response_status is None:
            raise _in_progress()
        raise _Replay(Response(record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"}))

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            return exc.response
        try:
            return super().handle_exception(exc)
        except BaseException:
            self._idempotency_release()
            raise

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self._idempotency_claim is not None:
            try:
                self._idempotency_complete(response)
            except BaseException:
                self._idempotency_release()
                raise
        return response

    def _idempotency_complete(self, response: HttpResponseBase) -> None:
        claim = self._idempotency_claim
        assert claim is not None
        if response.status_code >= 500 or not isinstance(response, Response):
            # Only a DRF answer can be replayed as status + JSON; anything else stays retryable.
            self._idempotency_release()
            return
        # Stored as the client saw it: through the renderer's JSON encoder (Decimal, datetime…).
        body = None if response.data is None else json.loads(JSONRenderer().render(response.data))
        IdempotencyRecord.objects.filter(pk=claim.pk, state=IdempotencyRecord.State.IN_PROGRESS).update(
            state=IdempotencyRecord.State.DONE,
            response_status=response.status_code,
            response_body=body,
            completed_at=timezone.now(),
        )
        self._idempotency_claim = None

    def _idempotency_release(self) -> None:
        claim, self._idempotency_claim = self._idempotency_claim, None
        if claim is None:
            return
        try:
            IdempotencyRecord.objects.filter(pk=claim.pk, state=IdempotencyRecord.State.IN_PROGRESS).delete()
        except DatabaseError:
            # Never mask the handler's own error; the stale claim expires with the TTL.
            logger.exception("could not release idempotency key %s", claim.pk)
