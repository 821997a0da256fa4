"""Prefixed public ids (``cmp_…``, ``png_…``, ``led_…``): what the API shows instead of row ids."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import models

# Each random byte's low five bits pick a character of base32's lower-case alphabet (256 is a
# multiple of 32, so every character is equally likely).
_ALPHABET = b"abcdefghijklmnopqrstuvwxyz234567"
_CHARACTER_OF_BYTE = bytes(_ALPHABET[b % 32] for b in range(256))


def public_id_new(prefix: str, *, length: int = 20) -> str:
    """A fresh random public id such as ``png_4k2v…`` (5 bits a character: 100 bits for 20)."""
    # One call into the OS's random source and one C translation: ids are made on the ping path,
    # a dozen a ping (base64's base32 encoder is pure Python).
    return prefix + secrets.token_bytes(length).translate(_CHARACTER_OF_BYTE).decode()


class PublicIdField(models.CharField):
    """A unique, prefixed public id, generated on first save when not set by hand."""

    def __init__(self, *args: Any, prefix: str = "", **kwargs: Any) -> None:
        self.prefix = prefix
        kwargs.setdefault("max_length", 64)
        kwargs["unique"] = True
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["prefix"] = self.prefix
        kwargs.pop("unique", None)
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = getattr(model_instance, self.attname)
        if not value:
            value = public_id_new(self.prefix)
            setattr(model_instance, self.attname, value)
        return str(value)
