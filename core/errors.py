"""The domain error base every app raises; the API maps them to its error format in one place."""

from __future__ import annotations


class ExchangeError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


class NotFound(ExchangeError):
    code = "not_found"
    status = 404


class Invalid(ExchangeError):
    code = "validation_error"
    status = 422
