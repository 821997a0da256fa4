"""Work a request can leave until its answer is on its way: :func:`after_response`.

The WSGI server closes the response once it has sent it, and Django then sends
``request_finished``: what was deferred runs there, in the request's thread, before the thread
takes its next request. Outside a request (a task, a command, a shell) it runs at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.core.signals import request_finished, request_started

logger = logging.getLogger(__name__)

_local = threading.local()


def after_response(work: Callable[[], object]) -> None:
    """Run ``work`` once the current request's response has been sent, or now outside a request.
    Only for what the client never waits for: an error is logged, not answered."""
    queue: list[Callable[[], object]] | None = getattr(_local, "queue", None)
    if queue is None:
        work()
    else:
        queue.append(work)


def _open(**kwargs: Any) -> None:
    _local.queue = []


def _run(**kwargs: Any) -> None:
    queue: list[Callable[[], object]] | None = getattr(_local, "queue", None)
    _local.queue = None
    for work in queue or ():
        try:
            work()
        except Exception:
            logger.exception("deferred work failed after the response: %r", work)


def connect() -> None:
    request_started.connect(_open, dispatch_uid="gavel-deferred-open")
    request_finished.connect(_run, dispatch_uid="gavel-deferred-run")
