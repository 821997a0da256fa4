"""The demo: simulated buyers and sellers around the real exchange, and ``manage.py demo_serve``.

Nothing in the exchange imports it; it only drives the exchange from outside, over HTTP.
"""
