"""Input rules shared by every surface: track bodies, emails, event names and contact data.

Hand-written instead of a DRF serializer because ``/v1/track`` is the hot path and
because the error items must carry Plunk's zod-style codes and messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator

from ..constants import EMAIL_MAX_LENGTH, EVENT_NAME_MAX_LENGTH, is_system_event
from .errors import FieldErrorList, ValidationFailed

_email_validator = EmailValidator()

#: Marker for "key absent", which zod reports as ``undefined``.
MISSING = object()


def js_type(value: Any) -> str:
    """The JavaScript type name zod reports in ``received``."""
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def enum_message(choices, value: Any) -> str:
    """Zod's (and so Plunk's) message for a value outside ``choices``."""
    expected = " | ".join(f"'{choice}'" for choice in choices)
    return f"Invalid enum value. Expected {expected}, received '{str(value)[:100]}'"


def type_error(errors: FieldErrorList, field: str, expected: str, value: Any) -> None:
    received = js_type(value)
    message = "Required" if value is MISSING else f"Expected {expected}, received {received}"
    errors.add(field, message, "invalid_type", received)


def check_email(errors: FieldErrorList, value: Any, field: str = "email") -> str | None:
    """Validate an email and return it trimmed and lowercased (Plunk issue #403)."""
    if not isinstance(value, str):
        type_error(errors, field, "string", value)
        return None
    email = value.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH:
        errors.add(field, f"String must contain at most {EMAIL_MAX_LENGTH} character(s)", "too_big")
        return None
    try:
        _email_validator(email)
    except DjangoValidationError:
        errors.add(field, "Invalid email", "invalid_string")
        return None
    return email


def check_event_name(
    errors: FieldErrorList, value: Any, field: str = "event", *, trim: bool = False
) -> str | None:
    """Tracked names are stored verbatim (case kept, no trimming) but may not be blank;
    workflow trigger and wait names are trimmed (``trim=True``), as Plunk does."""
    if not isinstance(value, str):
        type_error(errors, field, "string", value)
        return None
    if trim:
        value = value.strip()
    if not value.strip():
        errors.add(field, "String must contain at least 1 character(s)", "too_small")
        return None
    if len(value) > EVENT_NAME_MAX_LENGTH:
        errors.add(
            field, f"String must contain at most {EVENT_NAME_MAX_LENGTH} character(s)", "too_big"
        )
        return None
    return value


def check_subscribed(errors: FieldErrorList, value: Any, field: str = "subscribed") -> bool | None:
    if value is MISSING:
        return None
    if not isinstance(value, bool):
        type_error(errors, field, "boolean", value)
        return None
    return value


def check_data(errors: FieldErrorList, value: Any, field: str = "data") -> dict | None:
    """``data`` must be an object (or null/absent); ``locale`` must be a string."""
    if value is MISSING or value is None:
        return None
    if not isinstance(value, dict):
        type_error(errors, field, "object", value)
        return None
    locale = value.get("locale", MISSING)
    if locale not in (MISSING, None, "") and not isinstance(locale, str):
        type_error(errors, f"{field}.locale", "string", locale)
        return None
    return value


def reserved_event_error(name: str, field: str = "event") -> ValidationFailed:
    errors = [
        {
            "field": field,
            "message": f'Event name "{name}" is reserved for system use and cannot be manually tracked',
            "code": "reserved_event",
            "received": name,
        }
    ]
    return ValidationFailed(
        errors, "Cannot track reserved system event", details={"errors": errors}
    )


@dataclass(frozen=True)
class TrackInput:
    email: str
    event: str
    subscribed: bool | None
    data: dict | None


def parse_track(body: Any, prefix: str = "") -> TrackInput:
    """Validate one track body; raise :class:`ValidationFailed` listing every bad field."""
    errors = FieldErrorList()
    if not isinstance(body, dict):
        type_error(errors, prefix.rstrip(".") or "body", "object", body)
        raise ValidationFailed(errors)
    email = check_email(errors, body.get("email", MISSING), prefix + "email")
    event = check_event_name(errors, body.get("event", MISSING), prefix + "event")
    subscribed = check_subscribed(errors, body.get("subscribed", MISSING), prefix + "subscribed")
    data = check_data(errors, body.get("data", MISSING), prefix + "data")
    if errors:
        raise ValidationFailed(errors)
    if is_system_event(event):
        raise reserved_event_error(event, prefix + "event")
    return TrackInput(email=email, event=event, subscribed=subscribed, data=data)
