"""A web process is ready before its first request, so that request keeps its deadline.

Built lazily, the contract book, the modules Django's middleware imports on first use and the
outbound client made the first ping after a start take 1–2 s (its ``ping_timeout_ms`` was 500):

:func:`process_warm` builds them when the WSGI application is loaded (``exchange.wsgi``). With
gunicorn's ``preload_app`` (``gunicorn.conf.py``) that is the master, before it opens its port and
forks its workers, which then start ready. The outbound client (``core.outbound``) keeps no
process-wide thread or pool: each request thread opens its libcurl handles on its first call.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections
from django.urls import get_resolver
from django.utils.module_loading import import_string

from exchange.auction.book import book_current
from leads.scoring import scoring_warm

logger = logging.getLogger(__name__)

# Named by settings and imported by Django on the first request that uses them (the messages
# and session middleware).
LAZY_IMPORT_SETTINGS = ("MESSAGE_STORAGE", "SESSION_SERIALIZER")


def process_warm() -> None:
    """Load the views and the modules Django imports on first use, and build the contract book.
    Leaves no database connection open (a forked child must not share its parent's)."""
    get_resolver().url_patterns  # noqa: B018 - Django imports the views on the first request
    for name in LAZY_IMPORT_SETTINGS:
        import_string(getattr(settings, name))
    scoring_warm()  # the quality score's offline data (ZIP codes, disposable domains): seconds, once
    try:
        book_current()
    except Exception:  # noqa: BLE001 - no database or cache yet: the first ping builds the book
        logger.warning("the contract book could not be built at start", exc_info=True)
    finally:
        connections.close_all()
