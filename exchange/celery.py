"""The Celery app. Its broker is Redis, or with no REDIS_URL an embedded one (a SQLite file, exchange/settings.py);
its periodic tasks are ``CELERY_BEAT_SCHEDULE`` in the settings."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

app = Celery("gavel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
