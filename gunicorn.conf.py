"""gunicorn's settings for the exchange (read from the working directory, or ``-c gunicorn.conf.py``).

The command line still chooses workers, threads and the address (docs/deployment.md).
"""

# The master loads the application (Django, the views, the contract book: exchange.startup)
# before it opens its port, and forks workers that start ready: otherwise every worker loads it
# after the port is open, and the first requests wait 1–2 s for it, past a ping's deadline. New
# code needs a restart (or USR2), not a HUP: a HUP forks new workers from the loaded master.
preload_app = True
