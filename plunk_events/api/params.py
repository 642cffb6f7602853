"""Query-string parsing shared by the list endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from ..services.errors import FieldErrorList, ValidationFailed
from .formatting import decode_cursor


def lenient_int(raw: str | None, default: int, maximum: int) -> int:
    """A ``limit``, ``page`` or ``pageSize`` read as Plunk reads it (``parseInt(raw) || default``):
    absent, not a whole number (``null``, ``abc``, ``1.5``) or < 1 gives ``default``; capped at
    ``maximum``. Deliberately never a 422, for clients written against Plunk."""
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    if value < 1:
        value = default
    return min(value, maximum)


def parse_cursor(raw: str | None, errors: FieldErrorList, field: str = "cursor"):
    if not raw:
        return None
    after = decode_cursor(raw)
    if after is None:
        errors.add(field, "Invalid cursor", "invalid_string")
    return after


EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
LATEST = datetime(9999, 12, 29, tzinfo=UTC)


def parse_instant(raw: str | None, errors: FieldErrorList, field: str, *, end_of_day: bool):
    """ISO 8601 date or datetime; a date alone means the start (or, for an end, the whole) day."""
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            value = start + timedelta(days=1, microseconds=-1) if end_of_day else start
        else:
            value = datetime.fromisoformat(raw)
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
        # The store works in whole UTC days around the window: keep some room at both ends.
        if not EARLIEST <= value.astimezone(UTC) <= LATEST:
            raise ValueError(raw)
    except (ValueError, OverflowError):
        errors.add(field, f"Invalid date: {raw!r}", "invalid_date")
        return None
    return value


def date_window(query) -> tuple[datetime | None, datetime | None]:
    errors = FieldErrorList()
    start = parse_instant(query.get("startDate"), errors, "startDate", end_of_day=False)
    end = parse_instant(query.get("endDate"), errors, "endDate", end_of_day=True)
    if start and end and end < start:
        errors.add("endDate", "endDate must not be before startDate", "invalid_date")
    if errors:
        raise ValidationFailed(errors)
    return start, end
