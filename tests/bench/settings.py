"""Settings for the benchmark's gunicorn: the real settings, the hello-world URL, quiet logs.

``DEBUG=1`` in the environment only unlocks the development secrets (``SECRET_KEY``,
``GAVEL_PII_KEYS``) and private URLs, as for the test suite. Django's own ``DEBUG`` is then
switched off, as in production: with it on, Django keeps every SQL query of every request in
memory and the figures would measure that too.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("GAVEL_ALLOW_PRIVATE_URLS", "1")

from exchange.settings import *  # noqa: E402,F403

DEBUG = False
ROOT_URLCONF = "tests.bench.urls"
# Warnings and errors only (to gunicorn's error log): one line per request would cost CPU the
# load generator shares.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
