"""Structured logs with a request id (structlog over the standard library's logging).

* :class:`RequestIdMiddleware` gives every request an id — the caller's ``X-Request-ID`` when it is
  well formed (:data:`REQUEST_ID`), else a new one — binds it to the log context for the request
  (``structlog.contextvars``), returns it in the response's ``X-Request-ID`` and logs one line per
  request (method, path, status, duration).
* Celery: a task published while a request id is bound carries it in its message headers
  (``request_id``); the worker binds it, with the task's name and id, for the task's log lines.
* :func:`logging_config`: JSON lines (one object per line: ``timestamp``, ``level``, ``logger``,
  ``event``, ``request_id``…) in production, a readable console in development. Every logger — ours
  through ``logging.getLogger``, Django's, Celery's — goes through the same formatter, so each line
  carries the bound context.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.http import HttpRequest, HttpResponse

# A caller's id is kept when it is 8–128 characters of letters, digits and ``-_.:`` (a UUID, a
# proxy's trace id); anything else (empty, too long, spaces, control characters) is replaced.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
HEADER = "X-Request-ID"

logger = logging.getLogger("gavel.request")

SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(*, json: bool, level: str) -> dict[str, Any]:
    """Django's ``LOGGING``: every record rendered by structlog, as JSON lines or for a console."""
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        final.append(structlog.processors.format_exc_info)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [*final, renderer],
                "foreign_pre_chain": [*SHARED, structlog.stdlib.ExtraAdder()],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}, "celery.app.trace": {"level": "WARNING"}},
    }


def structlog_configure() -> None:
    """structlog's own loggers hand their events to the standard library, formatted as above."""
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def request_id_of(header: str | None) -> str:
    """The caller's id if well formed, else a new one."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


class RequestIdMiddleware:
    """First in the chain, so every log line of the request, and its answer, carry the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_of(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response
        finally:
            structlog.contextvars.clear_contextvars()


# --- Celery: the id travels in the task's headers --------------------------------------------------


@before_task_publish.connect
def _request_id_to_headers(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = current_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _request_id_bind(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    request_id = getattr(task.request, "request_id", None) if task is not None else None
    if not request_id and task is not None and task.request.is_eager:
        request_id = current_request_id()  # run in the request's own thread: keep its id
    structlog.contextvars.bind_contextvars(
        task=getattr(task, "name", None), task_id=task_id, **({"request_id": request_id} if request_id else {})
    )


@task_postrun.connect
def _request_id_unbind(task: Any = None, **kwargs: Any) -> None:
    if task is not None and task.request.is_eager:
        structlog.contextvars.unbind_contextvars("task", "task_id")  # back to the request's context
    else:
        structlog.contextvars.clear_contextvars()
