"""Settings for the test suite: the real settings, with test-only speedups."""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("GAVEL_ALLOW_PRIVATE_URLS", "1")

from exchange.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
