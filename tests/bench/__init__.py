"""The benchmark: ``make bench`` (``python tests/bench/run.py``). Not a test suite; see README.md."""
