import gc
import logging
import os

from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.urls import get_resolver

GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
application = get_wsgi_application()


def _book_warm() -> None:
    """Build the contract book before the first request: a worker started under load (a deploy,
    a restart) otherwise makes its first pings wait for it, all at once."""
    from exchange.auction.book import book_current

    try:
        book_current()
    except Exception:  # noqa: BLE001 - no database or cache yet: the first ping builds the book
        logging.getLogger(__name__).warning("the contract book could not be built at start", exc_info=True)
    finally:
        connections.close_all()  # never hand a connection across a fork (gunicorn --preload)


# Python's cycle collector walks every tracked object of the generation it collects; the oldest
# holds all of Django, the apps and their modules, which live as long as the process. Scanning
# them again and again was a fifth of a web worker's CPU under load (perf, ping-rtb at 150/s).
# Load the views (Django imports them on the first request) and the book too, then move
# everything alive now out of the collector's sight, and collect the young generation less
# often: a request makes thousands of short-lived objects, nearly all freed by reference counting.
get_resolver().url_patterns  # noqa: B018
_book_warm()
gc.freeze()
gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
