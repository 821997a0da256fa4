"""The API's serializer bases: strict inputs (unknown keys refused) and outputs that are their schema."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

READ_ONLY = "This field is read-only: it cannot be set."
UNKNOWN = "Unknown field."


def keys_refused(data: Any, fields: Mapping[str, Any]) -> dict[str, list[str]]:
    """The keys of ``data`` a write does not take, each with why: unknown, or read-only (an answer's
    field, such as a status or a price paid, that DRF would otherwise silently drop)."""
    if not isinstance(data, dict):
        return {}
    return {
        str(key): [READ_ONLY if key in fields else UNKNOWN]
        for key in sorted(data, key=str)
        if key not in fields or fields[key].read_only
    }


class StrictSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A serializer that refuses keys it does not know, and read-only ones, instead of silently
    dropping them."""

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        # DRF deep-copies every declared field for every instance (a fresh __init__ per field,
        # nested serializers included). Declared fields are never changed after they are built,
        # so a shallow copy (which DRF then binds) is enough.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data: Any) -> Any:
        refused = keys_refused(data, self.fields)
        if refused:
            raise serializers.ValidationError(refused)
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, nothing that merely looks like one."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ObjectField(serializers.DictField):
    """A JSON object (its values are checked by the offer's schema, not here)."""

    default_error_messages = {"not_a_dict": "Expected a JSON object."}


class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """An answer's shape, which is also its schema. :meth:`render` renders with one instance per
    class, its fields bound once: an answer's fields are read-only and keep no state, and DRF
    deep-copies every field of a new serializer (docs/performance.md)."""

    @classmethod
    def render(cls, instance: Any) -> dict[str, Any]:
        return dict(_renderer(cls).to_representation(instance))


@functools.cache
def _renderer(cls: type[OutputSerializer]) -> OutputSerializer:
    return cls()


# Input fields whose schema says what core.pii and Django accept, so a schema-valid value is never
# refused for its form (tests/test_schemathesis.py). A value of the right form may still be refused
# for what it is (a phone number no country has): the field's description says so.
SHA256_PATTERN = "^[0-9a-fA-F]{64}$"
# A phone as a person writes it: digits with spaces, dots, dashes and brackets, an optional + first.
PHONE_PATTERN = r"^\+?[0-9][0-9 ().-]{5,38}[0-9]$"


@extend_schema_field({"type": "string", "format": "email"})
class EmailText(serializers.CharField):
    """An email as the consumer gave it (checked and normalized by ``core.pii.email_normalize``)."""


@extend_schema_field({"type": "string", "pattern": PHONE_PATTERN})
class PhoneText(serializers.CharField):
    """A phone as the consumer gave it (checked by ``core.pii.phone_normalize``: a real number)."""


@extend_schema_field({"type": "string", "pattern": SHA256_PATTERN})
class Sha256Text(serializers.CharField):
    """A SHA-256 hex digest."""


@extend_schema_field({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
class IpAddressField(serializers.IPAddressField):
    """An IPv4 or IPv6 address, declared as such (DRF's field is documented as any string)."""
