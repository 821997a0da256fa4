"""The ping/post errors; the base and the common ones are in core.errors."""

from __future__ import annotations

from core.errors import ExchangeError


class PingMismatch(ExchangeError):
    code = "ping_mismatch"
    status = 422


class PingExpired(ExchangeError):
    code = "ping_expired"
    status = 410


class PingAlreadyPosted(ExchangeError):
    code = "ping_already_posted"
    status = 409
