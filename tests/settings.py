"""Settings for the test suite: the real settings, with test-only speedups."""

import os
from typing import Any

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("GAVEL_ALLOW_PRIVATE_URLS", "1")
# pytest-xdist: worker gwN gets its own Redis database, N below the suite's (its PostgreSQL test
# database is already its own: test_<name>_gwN). A server or worker a test starts is given these.
# A process a test starts inherits both variables: the flag keeps it from moving its database again.
if os.environ.get("REDIS_URL") and os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("GAVEL_TEST_REDIS_OWN"):
    _base, _, _db = os.environ["REDIS_URL"].rpartition("/")
    _n = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    os.environ["REDIS_URL"] = f"{_base}/{(int(_db or 0) - _n) % 16}"
    os.environ["GAVEL_TEST_REDIS_OWN"] = "1"

from core.logs import logging_config  # noqa: E402
from exchange.settings import *  # noqa: E402,F403
from exchange.settings import REDIS_URL  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    # A test database need not survive a crash: commits don't wait for the disk.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
if os.environ.get("LOG_JSON") == "1":  # a process a test starts (a Celery worker) in production's format
    LOGGING = logging_config(json=True, level=os.environ.get("LOG_LEVEL", "INFO"))
# Without Redis, tasks run in-process, as each test expects; with it they go to Redis, where only
# tests/exchange/test_celery_worker.py runs a worker. A worker and beat on the embedded broker are
# tested in tests/exchange/test_embedded_tasks.py, in subprocesses on their own database.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {}
# The fault drill's workers (tests/faults/test_worker_killed.py): a task a killed worker held is
# given to another after this many seconds unacknowledged, instead of the Redis transport's hour,
# looked for every second (kombu scans on every 10th look).
if os.environ.get("GAVEL_TEST_VISIBILITY_TIMEOUT"):
    _redelivery: Any = {"visibility_timeout": int(os.environ["GAVEL_TEST_VISIBILITY_TIMEOUT"])}
    _redelivery["unacked_restore_interval"] = 1
    CELERY_BROKER_TRANSPORT_OPTIONS = _redelivery
