"""JSON log lines with a request id: honoured when well formed, else replaced; in the response's
X-Request-ID, on every log line of the request, and on the lines of a task it ran."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery import shared_task
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from core.logs import logging_config
from exchange.celery import app

logger = logging.getLogger("tests.request_logs")


@shared_task(name="tests.log_something")
def log_something() -> None:
    logger.info("in the task")


def view(request: HttpRequest) -> HttpResponse:
    logger.info("in the view")
    log_something.delay()
    return HttpResponse("ok")


urlpatterns = [path("logged", view)]


@contextmanager
def captured_lines() -> Iterator[list[dict]]:
    """The JSON lines the production formatter writes, parsed, while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter_config = logging_config(json=True, level="INFO")["formatters"]["structured"]
    factory = formatter_config.pop("()")
    handler.setFormatter(factory(**formatter_config))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    parsed: list[dict] = []
    try:
        yield parsed
    finally:
        app.conf.task_always_eager = eager
        root.removeHandler(handler)
        root.setLevel(level)
    parsed.extend(json.loads(line) for line in stream.getvalue().splitlines())


def _request(header: str | None) -> HttpResponse:
    with override_settings(ROOT_URLCONF=__name__):
        extra = {"HTTP_X_REQUEST_ID": header} if header is not None else {}
        return Client().get("/logged", **extra)


def test_a_well_formed_request_id_is_kept_and_on_every_line_of_the_request_and_its_task() -> None:
    rid = "3f0c2d4e-9a1b-4c5d-8e7f-001122334455"
    with captured_lines() as captured:
        response = _request(rid)
    assert response["X-Request-ID"] == rid
    events = {line["event"]: line for line in captured}
    assert events["in the view"]["request_id"] == rid
    assert events["in the task"]["request_id"] == rid and events["in the task"]["task"] == "tests.log_something"
    assert events["request"]["request_id"] == rid and events["request"]["status"] == 200
    assert all(line["level"] for line in captured)


@pytest.mark.parametrize("header", [None, "", "short", "x" * 129, "has space in it", "bad\\id;drop"])
def test_a_missing_or_malformed_request_id_is_replaced(header: str | None) -> None:
    with captured_lines() as captured:
        response = _request(header)
    rid = response["X-Request-ID"]
    assert rid != header and len(rid) == 32 and rid.isalnum()
    assert {line["request_id"] for line in captured if line["event"] in ("in the view", "request")} == {rid}
