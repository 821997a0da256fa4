"""Prefixed public ids (``cmp_…``, ``png_…``, ``led_…``): what the API shows instead of row ids."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from django.db import models


def public_id_new(prefix: str, *, length: int = 20) -> str:
    """A fresh random public id such as ``png_4k2v…`` (5 bits a character: 100 bits for 20)."""
    # One call into the OS's random source, not one per character: ids are made on the ping path.
    return prefix + base64.b32encode(secrets.token_bytes(length * 5 // 8 + 1)).decode().lower()[:length]


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
