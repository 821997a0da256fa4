"""The default settings (no ``REDIS_URL``: Celery's embedded broker), with every beat entry due each
second, so tests/exchange/test_embedded_tasks.py sees beat at work within seconds."""

from exchange.settings import *  # noqa: F403
from exchange.settings import CELERY_BEAT_SCHEDULE

CELERY_BEAT_SCHEDULE = {name: {**entry, "schedule": 1.0} for name, entry in CELERY_BEAT_SCHEDULE.items()}
