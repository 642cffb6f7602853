"""Query-string parsing shared by the list endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from ..conf import conf
from ..services.errors import FieldErrorList, ValidationFailed
from ..services.store import decode_cursor


def parse_limit(raw: str | None, default: int) -> int:
    """Plunk's ``parseInt(limit) || default``; <= 0 or non-numeric gives the default, capped."""
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    if value <= 0:
        value = default
    return min(value, conf.EVENTS_MAX_LIMIT)


def parse_cursor(raw: str | None, errors: FieldErrorList, field: str = "cursor"):
    if not raw:
        return None
    after = decode_cursor(raw)
    if after is None:
        errors.add(field, "Invalid cursor", "invalid_string")
    return after


def parse_instant(raw: str | None, errors: FieldErrorList, field: str, *, end_of_day: bool):
    """ISO 8601 date or datetime; a date alone means the start (or, for an end, the whole) day."""
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1, microseconds=-1) if end_of_day else start
        value = datetime.fromisoformat(raw)
    except ValueError:
        errors.add(field, f"Invalid date: {raw!r}", "invalid_date")
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def date_window(query) -> tuple[datetime | None, datetime | None]:
    errors = FieldErrorList()
    start = parse_instant(query.get("startDate"), errors, "startDate", end_of_day=False)
    end = parse_instant(query.get("endDate"), errors, "endDate", end_of_day=True)
    if start and end and end < start:
        errors.add("endDate", "endDate must not be before startDate", "invalid_date")
    if errors:
        raise ValidationFailed(errors)
    return start, end
