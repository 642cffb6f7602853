"""Validation of Plunk's segment filter grammar (Plunk's OpenAPI ``FilterCondition``).

Pure: no database access, so the API serializers, the segment service and the admin's Segment
form all call :func:`validate_condition` and report the same errors with the same field paths
(``condition.groups.0.filters.1.operator``).
"""

from __future__ import annotations

import numbers
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
    "event": frozenset(EVENT_OPERATORS),
    "email": frozenset(EVENT_OPERATORS),
    "segment": frozenset(MEMBERSHIP_OPERATORS),
}

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


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


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
    if operator not in OPERATORS:
        errors.add(f"{path}.operator", enum_message(OPERATORS, operator), "invalid_enum_value")
        return
    if kind is not None and operator not in OPERATORS_BY_KIND[kind]:
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
    elif operator in ("contains", "notContains"):
        if not isinstance(value, str):
            type_error(errors, f"{path}.value", "string", value)
    elif operator in VALUE_OPERATORS and value in (MISSING, None):
        type_error(errors, f"{path}.value", "string, number or boolean", value)

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


def validate_condition(condition: Any, field: str = "condition") -> list[dict[str, Any]]:
    """Every problem of ``condition`` as ``[{field, message, code[, received]}]``; empty if valid.

    ``field`` is the path prefix of the errors (``condition`` in the API and the admin).
    """
    errors = FieldErrorList()
    _check_condition(errors, condition, field, depth=1)
    return list(errors)
