"""The one strict reader of JSON that comes from outside: API bodies, operators' JSON fields and
market files.

The standard library's parser takes things the rest of the exchange cannot hold: nesting deep
enough to exhaust the interpreter's recursion limit (in the parser, or in whatever walks the
value next), ``1e400`` (a float infinity), ``NaN``, a lone surrogate (``"\\ud800"``, which no
UTF-8 encoder takes) and ``"\\u0000"`` (PostgreSQL's text and jsonb refuse NUL), and it keeps
the last of duplicate keys while another reader of the same bytes may keep the first. Each of
these is refused here with a :class:`JsonDocumentError`, so the callers answer a clean 400 (or
a form error) instead of failing somewhere downstream.

Integers keep Python's own digit limit (``sys.get_int_max_str_digits()``, 4300 by default): a
longer one is refused like any other malformed number.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

# Deeper than any body, rule or field list of the exchange needs, and far from the interpreter's
# recursion limit, so code that walks a value recursively (DRF, the rule parser, json.dumps)
# never meets it.
MAX_DEPTH = 32


class JsonDocumentError(ValueError):
    """The text is not a JSON document the exchange accepts; ``message`` says why, for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Refused(ValueError):
    """A decoder hook's refusal; its message is for a person."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"Duplicate key {key[:40]!r}")
            seen.add(key)
    return document


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Refused(f"Number {text[:40]} is out of range")
    return number


def _no_constant(text: str) -> float:
    raise _Refused(f"{text} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_float=_finite_float, parse_constant=_no_constant)


def json_depth(value: object, *, limit: int = MAX_DEPTH) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0, ``[]`` is 1), counted
    without recursion; the walk stops as soon as it passes ``limit``, so a cyclic value (a YAML
    alias of itself) ends too, reported as ``limit + 1``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def _strings_storable(value: object) -> None:
    """Refuse a NUL or a lone surrogate in any key or string of ``value`` (both can only come
    from a ``\\u`` escape: the parser refuses raw control characters, and the UTF-8 decoder raw
    surrogates)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings: Any = (item,)
        elif isinstance(item, dict):
            strings = item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            if "\x00" in text:
                raise JsonDocumentError("Strings must not contain NUL characters (\\u0000).")
            if not text.isascii():
                try:
                    text.encode()
                except UnicodeEncodeError as exc:
                    raise JsonDocumentError("Strings must not contain lone surrogates (\\ud800-\\udfff).") from exc


def json_document_parse(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document (UTF-8 if bytes) and return its value, or raise
    :class:`JsonDocumentError`: invalid UTF-8 or JSON, nesting past ``max_depth``, a duplicate
    key, a number outside a float's range or past Python's digit limit, ``NaN``/``Infinity``, a
    NUL or a lone surrogate in a string. Never raises anything else, whatever ``data`` is."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonDocumentError(f"Not UTF-8 (byte {exc.start}).") from exc
    else:
        text = data
    try:
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise JsonDocumentError(f"Nested deeper than {max_depth} levels.") from exc
    except json.JSONDecodeError as exc:
        raise JsonDocumentError(f"{exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
    except _Refused as exc:
        raise JsonDocumentError(f"{exc}.") from exc
    except ValueError as exc:  # the only other one: an integer past Python's digit limit
        raise JsonDocumentError(f"An integer has more than {sys.get_int_max_str_digits()} digits.") from exc
    # Counting brackets costs next to nothing and clears nearly every document of the walks.
    if text.count("[") + text.count("{") > max_depth and json_depth(value, limit=max_depth) > max_depth:
        raise JsonDocumentError(f"Nested deeper than {max_depth} levels.")
    # Only an escape puts a NUL or a lone surrogate in a string decoded from UTF-8 bytes.
    if "\\u" in text or (isinstance(data, str) and not text.isascii()):
        _strings_storable(value)
    return value


class StrictJSONDecoder(json.JSONDecoder):
    """:func:`json_document_parse` for code that takes a decoder class (Django's form
    ``JSONField``): its errors come out as the ``json.JSONDecodeError`` such code handles."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return json_document_parse(s)
        except JsonDocumentError as exc:
            raise json.JSONDecodeError(exc.message, s, 0) from exc


class StoredJSONDecoder(json.JSONDecoder):
    """For JSON stored in the database (a model ``JSONField``'s ``decoder``): a document nested too
    deep to decode on this thread's stack reads as :data:`UNREADABLE` instead of raising, so one
    bad row (written before the limits, or by hand) cannot stop the query that reads every row. The
    code that reads the value refuses the marker as it refuses any malformed value."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(s, *args, **kwargs)
        except RecursionError:
            return dict(UNREADABLE)


UNREADABLE = {"unreadable": "nested too deep to read"}
