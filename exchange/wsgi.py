import gc
import os

from django.core.wsgi import get_wsgi_application

GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
django_application = get_wsgi_application()

# Imported once Django is set up (get_wsgi_application): they load models.
from exchange.arrival import ArrivalStamp  # noqa: E402
from exchange.startup import process_warm  # noqa: E402

# Outermost: a request's deadline counts from here (exchange.arrival).
application = ArrivalStamp(django_application)

# Python's cycle collector walks every tracked object of the generation it collects; the oldest
# holds all of Django, the apps and their modules, which live as long as the process. Scanning
# them again and again was a fifth of a web worker's CPU under load (perf, ping-rtb at 150/s).
# Load the views (Django imports them on the first request) and the book too, then move
# everything alive now out of the collector's sight, and collect the young generation less
# often: a request makes thousands of short-lived objects, nearly all freed by reference counting.
process_warm()
gc.freeze()
gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
