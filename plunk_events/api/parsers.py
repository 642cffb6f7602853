"""A JSON parser that only reads JSON and only lets through what both databases can store.

A body must say it is JSON (``application/json`` or ``application/*+json``; a body without a
``Content-Type`` is read as JSON too, as Plunk's clients sometimes omit it) and may name only a
text encoding JSON allows: UTF-8, UTF-16 or UTF-32 (RFC 8259/7159), or ASCII/Latin-1. Any other
``charset`` is a 415: Python's codecs also include ``bz2``, ``zlib`` and ``base64``, which would
otherwise decompress a small body into a huge one. Every allowed encoding decodes to at most one
character per byte, so the body limits hold for the decoded text too.

PostgreSQL rejects ``\\u0000`` in text and jsonb, lone surrogates cannot be encoded as UTF-8, and
``1e999`` parses to infinity, which no JSON column accepts. Caught here, they become a 400 or a
422 with the offending field instead of a 500 from the database.
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from ..services.errors import ValidationFailed

#: Codec names (as ``codecs.lookup(...).name`` spells them) a JSON body may be sent in.
JSON_ENCODINGS = frozenset(
    {
        "utf-8",
        "utf-8-sig",
        "utf-16",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "utf-32-le",
        "utf-32-be",
        "ascii",
        "iso8859-1",
    }
)


class UnsupportedBody(UnsupportedMediaType):
    """415 with a message that names what was wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(media_type="", detail=message)


def is_json_media_type(media_type: str) -> bool:
    main, _ = parse_header_parameters(media_type)
    return main == "application/json" or (
        main.startswith("application/") and main.endswith("+json")
    )


def json_body_encoding(content_type: str) -> str:
    """The codec to decode a JSON body sent with ``content_type``; 415 for anything else."""
    if not content_type.strip():
        return "utf-8"
    if len(content_type) > 255 or not is_json_media_type(content_type):
        raise UnsupportedBody(
            f'Unsupported Content-Type "{content_type[:100]}"; send the body as application/json'
        )
    _, params = parse_header_parameters(content_type)
    charset = params.get("charset", "utf-8").strip().lower()
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        codec = None
    if codec not in JSON_ENCODINGS:
        raise UnsupportedBody(
            f'Unsupported charset "{charset[:40]}"; JSON bodies must be UTF-8 (or UTF-16/UTF-32)'
        )
    return codec


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
        encoding = json_body_encoding(media_type or "")
        try:
            data = json.loads(
                stream.read().decode(encoding),
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
