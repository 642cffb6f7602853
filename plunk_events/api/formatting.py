"""How the API writes values: timestamps like JavaScript's ``toISOString()`` and opaque cursors."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any


def iso_timestamp(value: datetime) -> str:
    """UTC with milliseconds and ``Z``: ``2024-01-15T10:30:00.000Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timestamp_now() -> str:
    return iso_timestamp(datetime.now(UTC))


def jsonable(value: Any) -> Any:
    """``value`` with every datetime inside it written by :func:`iso_timestamp` (services put
    datetimes in error details and usage; the API decides how they look)."""
    if isinstance(value, datetime):
        return iso_timestamp(value)
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def encode_cursor(after: tuple[datetime, uuid.UUID]) -> str:
    """The keyset position ``(created_at, id)`` as an opaque, URL-safe string."""
    created_at, event_id = after
    raw = f"{created_at.astimezone(UTC).isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """Parse a keyset cursor; ``None`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, event_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            return None
        return created_at.astimezone(UTC), uuid.UUID(event_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None
