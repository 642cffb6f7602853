"""Validation of Plunk's segment filter grammar (Plunk's OpenAPI ``FilterCondition``).

Pure: no database access, so the API serializers, the segment service and the admin's Segment
form all call :func:`validate_condition` and report the same errors with the same field paths
(``condition.groups.0.filters.1.operator``). The date and window helpers here are shared by
the evaluation (:mod:`.segment_query`), so what validates is what is evaluated.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..constants import EVENT_NAME_MAX_LENGTH
from .errors import FieldErrorList
from .validation import MISSING, enum_message, type_error

LOGICS = ("AND", "OR")
UNITS = ("days", "hours", "minutes")

#: Fields of the contact row itself.
CONTACT_FIELDS = frozenset({"email", "subscribed", "createdAt", "updatedAt"})
#: Activities of ``email.<activity>`` fields (evaluated on email records).
EMAIL_ACTIVITIES = frozenset(
    {
        "sent",
        "delivery",
        "delivered",
        "open",
        "opened",
        "click",
        "clicked",
        "bounce",
        "bounced",
        "complaint",
        "complained",
    }
)

COMPARISON_OPERATORS = (
    "equals",
    "notEquals",
    "contains",
    "notContains",
    "greaterThan",
    "lessThan",
    "greaterThanOrEqual",
    "lessThanOrEqual",
)
PRESENCE_OPERATORS = ("exists", "notExists")
DATE_WINDOW_OPERATORS = ("within", "olderThan")
EVENT_OPERATORS = (
    "triggered",
    "triggeredWithin",
    "triggeredOlderThan",
    "notTriggered",
    "notTriggeredWithin",
)
MEMBERSHIP_OPERATORS = ("memberOfSegment", "notMemberOfSegment")
#: Extension (Plunk issue #236, not in Plunk): how many times an ``event.<name>`` was
#: triggered, optionally within ``window`` ``{amount, unit}``. Not in :data:`OPERATORS`, whose
#: enum message stays Plunk's.
COUNT_OPERATORS = ("triggeredAtLeast", "triggeredAtMost")
#: Largest value of a count operator.
MAX_COUNT = 1_000_000_000
OPERATORS = (
    *COMPARISON_OPERATORS,
    *PRESENCE_OPERATORS,
    *DATE_WINDOW_OPERATORS,
    *EVENT_OPERATORS,
    *MEMBERSHIP_OPERATORS,
)
#: Operators whose ``value`` is a number of ``unit``s.
WINDOW_OPERATORS = frozenset(
    {"within", "olderThan", "triggeredWithin", "triggeredOlderThan", "notTriggeredWithin"}
)
VALUE_OPERATORS = frozenset(COMPARISON_OPERATORS) | WINDOW_OPERATORS

#: Which operators each kind of field accepts.
OPERATORS_BY_KIND = {
    "contact": frozenset(COMPARISON_OPERATORS + PRESENCE_OPERATORS + DATE_WINDOW_OPERATORS),
    "event": frozenset(EVENT_OPERATORS + COUNT_OPERATORS),
    "email": frozenset(EVENT_OPERATORS),
    "segment": frozenset(MEMBERSHIP_OPERATORS),
}

#: Operators of the contact row's own fields (``data.<path>`` takes every "contact" operator).
DATE_FIELDS = ("createdAt", "updatedAt")
DATE_FIELD_OPERATORS = frozenset(
    {"equals", "notEquals", "greaterThan", "lessThan", "greaterThanOrEqual", "lessThanOrEqual"}
) | frozenset(DATE_WINDOW_OPERATORS)
FIELD_OPERATORS = {
    "email": frozenset(COMPARISON_OPERATORS[:4]),
    "subscribed": frozenset({"equals", "notEquals"}),
    "createdAt": DATE_FIELD_OPERATORS,
    "updatedAt": DATE_FIELD_OPERATORS,
}

#: Milliseconds per window unit (Plunk's ``getMilliseconds``).
UNIT_MS = {"days": 86_400_000, "hours": 3_600_000, "minutes": 60_000}
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)

#: Nesting limit of ``groups[].conditions``; deeper trees are refused rather than recursed into.
MAX_DEPTH = 10


def field_kind(field: str) -> str | None:
    """``contact``, ``event``, ``email`` or ``segment`` for a supported filter field, else None."""
    if field in CONTACT_FIELDS:
        return "contact"
    namespace, dot, rest = field.partition(".")
    if not dot or not rest:
        return None
    if namespace == "data":
        return "contact"
    if namespace == "event":
        return "event" if len(rest) <= EVENT_NAME_MAX_LENGTH and rest.strip() else None
    if namespace == "email":
        return "email" if rest in EMAIL_ACTIVITIES else None
    if namespace == "segment":
        return "segment"
    return None


def field_operators(field: str) -> frozenset[str] | None:
    """The operators ``field`` takes; None for an unsupported field."""
    kind = field_kind(field)
    if kind is None:
        return None
    return FIELD_OPERATORS.get(field, OPERATORS_BY_KIND[kind])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Dates and windows, as Plunk computes them in JavaScript

_DATE_LIKE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T|$)")


def parse_date(value: Any) -> datetime | None:
    """``new Date(value)`` for what a filter may carry: milliseconds since 1970, or an ISO 8601
    string (UTC unless it has an offset), to the millisecond; None if it is not a date."""
    try:
        if _is_number(value):
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    except (ValueError, OverflowError):
        return None
    return None


def date_like_day(value: Any) -> date | None:
    """The day of a date-like string, ``YYYY-MM-DD`` alone or followed by ``T…``, that parses
    as a date (Plunk's ``isDateString``); None for anything else."""
    if not isinstance(value, str) or not _DATE_LIKE.match(value) or parse_date(value) is None:
        return None
    return date.fromisoformat(value[:10])


def day_start(day: date) -> datetime:
    """Midnight UTC starting ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


def window_start(now: datetime, amount: float, unit: str) -> datetime:
    """``now`` minus ``amount`` ``unit``s of fixed length (a day is 24 hours), to the
    microsecond; the earliest representable instant if that is before year 1."""
    try:
        return now - timedelta(milliseconds=amount * UNIT_MS[unit])
    except OverflowError:
        return EARLIEST


def iso_ms(moment: datetime) -> str:
    """JavaScript's ``toISOString()``: UTC to the millisecond, ``2024-01-15T10:30:00.000Z``."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}Z"
    )


# ---------------------------------------------------------------------------------------------
# Validation


def _check_count(errors: FieldErrorList, value: Any, path: str) -> None:
    if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
        type_error(errors, path, "integer", value)
    elif value < 0:
        errors.add(path, "Number must be greater than or equal to 0", "too_small")
    elif value > MAX_COUNT:
        errors.add(path, f"Number must be less than or equal to {MAX_COUNT}", "too_big")


def _check_window(errors: FieldErrorList, window: Any, path: str) -> None:
    if not isinstance(window, dict):
        type_error(errors, path, "object", window)
        return
    amount = window.get("amount", MISSING)
    if not _is_number(amount):
        type_error(errors, f"{path}.amount", "number", amount)
    elif amount <= 0:
        errors.add(f"{path}.amount", "Number must be greater than 0", "too_small")
    unit = window.get("unit", MISSING)
    if unit in (MISSING, None):
        type_error(errors, f"{path}.unit", "string", unit)
    elif unit not in UNITS:
        errors.add(f"{path}.unit", enum_message(UNITS, unit), "invalid_enum_value")


def _check_filter(errors: FieldErrorList, flt: Any, path: str) -> None:
    if not isinstance(flt, dict):
        type_error(errors, path, "object", flt)
        return
    field = flt.get("field", MISSING)
    kind = None
    if not isinstance(field, str):
        type_error(errors, f"{path}.field", "string", field)
    else:
        kind = field_kind(field)
        if kind is None:
            errors.add(f"{path}.field", f"Unsupported filter field: {field}", "custom")

    operator = flt.get("operator", MISSING)
    if not isinstance(operator, str):
        type_error(errors, f"{path}.operator", "string", operator)
        return
    if operator not in OPERATORS and operator not in COUNT_OPERATORS:
        errors.add(f"{path}.operator", enum_message(OPERATORS, operator), "invalid_enum_value")
        return
    if kind is not None and operator not in field_operators(field):
        errors.add(
            f"{path}.operator",
            f'Operator "{operator}" cannot be used with field "{field}"',
            "custom",
        )

    value = flt.get("value", MISSING)
    if operator in WINDOW_OPERATORS:
        if not _is_number(value):
            type_error(errors, f"{path}.value", "number", value)
        elif value <= 0:
            errors.add(f"{path}.value", "Number must be greater than 0", "too_small")
    elif operator in COUNT_OPERATORS:
        _check_count(errors, value, f"{path}.value")
        window = flt.get("window", MISSING)
        if window not in (MISSING, None):
            _check_window(errors, window, f"{path}.window")
    elif operator in ("contains", "notContains"):
        if not isinstance(value, str):
            type_error(errors, f"{path}.value", "string", value)
    elif operator in VALUE_OPERATORS and (
        value in (MISSING, None) or isinstance(value, dict | list)
    ):
        type_error(errors, f"{path}.value", "string, number or boolean", value)
    elif operator in VALUE_OPERATORS and field in DATE_FIELDS and parse_date(value) is None:
        errors.add(f"{path}.value", "Invalid date", "invalid_date")

    unit = flt.get("unit", MISSING)
    if operator in WINDOW_OPERATORS and unit in (MISSING, None):
        type_error(errors, f"{path}.unit", "string", unit)
    elif unit not in (MISSING, None) and unit not in UNITS:
        errors.add(f"{path}.unit", enum_message(UNITS, unit), "invalid_enum_value")


def _check_condition(errors: FieldErrorList, condition: Any, path: str, depth: int) -> None:
    if not isinstance(condition, dict):
        type_error(errors, path, "object", condition)
        return
    logic = condition.get("logic", MISSING)
    if not isinstance(logic, str):
        type_error(errors, f"{path}.logic", "string", logic)
    elif logic not in LOGICS:
        errors.add(f"{path}.logic", enum_message(LOGICS, logic), "invalid_enum_value")

    groups = condition.get("groups", MISSING)
    if not isinstance(groups, list):
        type_error(errors, f"{path}.groups", "array", groups)
        return
    if not groups:
        errors.add(f"{path}.groups", "Array must contain at least 1 element(s)", "too_small")
    for index, group in enumerate(groups):
        group_path = f"{path}.groups.{index}"
        if not isinstance(group, dict):
            type_error(errors, group_path, "object", group)
            continue
        filters = group.get("filters", MISSING)
        nested = group.get("conditions")
        if not isinstance(filters, list):
            type_error(errors, f"{group_path}.filters", "array", filters)
            filters = []
        elif not filters and nested is None:
            errors.add(
                f"{group_path}.filters",
                "A group needs at least one filter or a nested condition",
                "too_small",
            )
        for position, flt in enumerate(filters):
            _check_filter(errors, flt, f"{group_path}.filters.{position}")
        if nested is not None:
            if depth >= MAX_DEPTH:
                errors.add(
                    f"{group_path}.conditions",
                    f"Conditions may be nested at most {MAX_DEPTH} levels deep",
                    "too_big",
                )
            else:
                _check_condition(errors, nested, f"{group_path}.conditions", depth + 1)


def iter_filters(condition: Any, field: str = "condition") -> Iterator[tuple[str, dict]]:
    """``(path, filter)`` for every filter object of a condition, nested groups included; the
    paths are those of the validation errors (``condition.groups.1.conditions.groups.0.filters.2``)."""
    if not isinstance(condition, dict) or not isinstance(condition.get("groups"), list):
        return
    for index, group in enumerate(condition["groups"]):
        if not isinstance(group, dict):
            continue
        path = f"{field}.groups.{index}"
        filters = group.get("filters")
        for position, flt in enumerate(filters if isinstance(filters, list) else []):
            if isinstance(flt, dict):
                yield f"{path}.filters.{position}", flt
        yield from iter_filters(group.get("conditions"), f"{path}.conditions")


def validate_condition(condition: Any, field: str = "condition") -> list[dict[str, Any]]:
    """Every problem of ``condition`` as ``[{field, message, code[, received]}]``; empty if valid.

    ``field`` is the path prefix of the errors (``condition`` in the API and the admin).
    """
    errors = FieldErrorList()
    _check_condition(errors, condition, field, depth=1)
    return list(errors)
