"""gunicorn's settings for the exchange (read from the working directory, or ``-c gunicorn.conf.py``).

The command line still chooses workers, threads and the address (docs/deployment.md).
"""

from typing import Any

# The master loads the application (Django, the views, the contract book: exchange.startup)
# before it opens its port, and forks workers that start ready: otherwise every worker loads it
# after the port is open, and the first requests wait 1–2 s for it, past a ping's deadline. New
# code needs a restart (or USR2), not a HUP: a HUP forks new workers from the loaded master.
preload_app = True


def post_worker_init(worker: Any) -> None:
    """In each new worker, its application loaded: start what cannot cross a fork
    (exchange.startup.worker_warm)."""
    from exchange.startup import worker_warm  # importable only once Django is set up

    worker_warm()
