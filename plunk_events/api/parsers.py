"""A JSON parser that only lets through what both databases can store.

PostgreSQL rejects ``\\u0000`` in text and jsonb, lone surrogates cannot be encoded as UTF-8, and
``1e999`` parses to infinity, which no JSON column accepts. Caught here, they become a 400 or a
422 with the offending field instead of a 500 from the database.
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..services.errors import ValidationFailed


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"Number out of range: {text}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Invalid JSON constant: {name}")


def storable_string_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    if "\x00" in value:
        return "String must not contain the NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "String must not contain unpaired surrogate characters"
    return None


def find_unstorable(data: Any) -> tuple[str, str] | None:
    """The dot path and reason of the first string (key or value) that cannot be stored."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            problem = storable_string_problem(value)
            if problem:
                return path or "body", problem
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                problem = storable_string_problem(key)
                if problem:
                    return child, problem
                stack.append((item, child))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))
    return None


class StorableJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.load(
                codecs.getreader(encoding)(stream),
                parse_constant=_reject_constant,
                parse_float=_finite_float,
            )
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        problem = find_unstorable(data)
        if problem:
            field, message = problem
            raise ValidationFailed([{"field": field, "message": message, "code": "invalid_string"}])
        return data
