"""What a workflow step may hold: its name, its position on the canvas and its ``config``.

One rule set for every surface that writes steps (``POST /workflows`` ``steps``, the step
routes, the Python API, the admin). Problems are reported as ``errors[]`` items with field
paths, so the API answers 422 naming ``config.amount`` or ``steps.2.config.eventName``.
"""

from __future__ import annotations

import math
import uuid
from typing import Any
from urllib.parse import urlsplit

from ..models import WorkflowStep
from .db import db_for_write
from .errors import FieldErrorList, ValidationFailed
from .validation import (
    MISSING,
    check_data,
    check_email,
    check_event_name,
    enum_message,
    type_error,
)
from .workflow_values import DEFAULT_BRANCH, validate_condition_config

#: Longest WAIT_FOR_EVENT timeout and DELAY, in seconds (one year / 365 days, as Plunk).
MAX_WAIT_TIMEOUT_SECONDS = 31_536_000
MAX_DELAY_SECONDS = 365 * 24 * 3600
DELAY_UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
STEP_NAME_MAX_LENGTH = 100
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WEBHOOK_URL_MAX_LENGTH = 2048
SUBSCRIPTION_ACTIONS = ("none", "subscribe", "unsubscribe")
#: Who a SEND_EMAIL step writes to: the contact, or ``recipient.customEmail``.
RECIPIENT_CONTACT = "CONTACT"
RECIPIENT_CUSTOM = "CUSTOM"
RECIPIENT_TYPES = (RECIPIENT_CONTACT, RECIPIENT_CUSTOM)
#: The branches of a binary CONDITION.
BINARY_BRANCHES = ("yes", "no")

Type = WorkflowStep.Type


#: Why a TRIGGER step cannot be added.
ONE_TRIGGER = "A workflow has one TRIGGER step, created with it from its eventName"


def check_step_type(
    errors: FieldErrorList, value: Any, path: str = "type", *, trigger_message: str = ONE_TRIGGER
) -> str | None:
    """A step type other than TRIGGER (a workflow's one TRIGGER step is made with it)."""
    if not isinstance(value, str):
        type_error(errors, path, "string", value)
        return None
    if value == Type.TRIGGER:
        errors.add(path, trigger_message, "custom")
        return None
    if value not in Type.values:
        errors.add(path, enum_message(Type.values, value), "invalid_enum_value")
        return None
    return value


def check_step_name(errors: FieldErrorList, value: Any, path: str = "name") -> str | None:
    if not isinstance(value, str):
        type_error(errors, path, "string", value)
        return None
    if not value.strip() or len(value) > STEP_NAME_MAX_LENGTH:
        errors.add(
            path,
            f"String must contain 1 to {STEP_NAME_MAX_LENGTH} character(s)",
            "too_big" if value.strip() else "too_small",
        )
        return None
    return value


def check_position(errors: FieldErrorList, value: Any, path: str = "position") -> dict | None:
    """``{x, y}``, two finite numbers; other keys are dropped."""
    if not isinstance(value, dict):
        type_error(errors, path, "object", value)
        return None
    position = {}
    for axis in ("x", "y"):
        number = value.get(axis, MISSING)
        if not isinstance(number, int | float) or isinstance(number, bool):
            type_error(errors, f"{path}.{axis}", "number", number)
        elif not math.isfinite(number):
            errors.add(f"{path}.{axis}", "Number must be finite", "not_finite")
        else:
            position[axis] = number
    return position if len(position) == 2 else None


def _check_wait(errors: FieldErrorList, config: dict, path: str) -> dict:
    name = check_event_name(
        errors, config.get("eventName", MISSING), f"{path}.eventName", trim=True
    )
    timeout = config.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, int) or isinstance(timeout, bool):
            type_error(errors, f"{path}.timeout", "integer", timeout)
        elif not 0 < timeout <= MAX_WAIT_TIMEOUT_SECONDS:
            errors.add(
                f"{path}.timeout",
                f"Timeout must be between 1 and {MAX_WAIT_TIMEOUT_SECONDS} seconds",
                "too_big" if timeout > 0 else "too_small",
            )
    return {**config, "eventName": name} if name is not None else config


def _check_delay(errors: FieldErrorList, config: dict, path: str) -> None:
    amount = config.get("amount", MISSING)
    unit = config.get("unit", MISSING)
    if not isinstance(amount, int | float) or isinstance(amount, bool):
        type_error(errors, f"{path}.amount", "number", amount)
        amount = None
    elif not math.isfinite(amount) or amount <= 0:
        errors.add(f"{path}.amount", "Number must be greater than 0", "too_small")
        amount = None
    if unit not in DELAY_UNITS:
        if isinstance(unit, str):
            errors.add(f"{path}.unit", enum_message(DELAY_UNITS, unit), "invalid_enum_value")
        else:
            type_error(errors, f"{path}.unit", "string", unit)
    elif amount is not None and amount * DELAY_UNITS[unit] > MAX_DELAY_SECONDS:
        errors.add(f"{path}.amount", "Delay must be at most 365 days", "too_big")


def _check_send_email(errors: FieldErrorList, config: dict, path: str, project=None) -> dict:
    """``{templateId?, recipient?: {type: CONTACT|CUSTOM, customEmail}}``. The template must be
    one of ``project``'s (when a project is given); a step without one fails when it runs, as
    in Plunk. A CUSTOM recipient's address is stored trimmed and lower-cased."""
    template_id = config.get("templateId")
    if template_id is not None:
        if not isinstance(template_id, str):
            type_error(errors, f"{path}.templateId", "string", template_id)
        elif not _is_uuid(template_id):
            errors.add(f"{path}.templateId", "Invalid uuid", "invalid_string")
        elif project is not None and not project_template_exists(project, template_id):
            message = f"Template not found: {template_id}"
            errors.add(f"{path}.templateId", message, "custom")
    recipient = config.get("recipient")
    if recipient is None:
        return config
    if not isinstance(recipient, dict):
        type_error(errors, f"{path}.recipient", "object", recipient)
        return config
    kind = recipient.get("type", RECIPIENT_CONTACT)
    if kind not in RECIPIENT_TYPES:
        if isinstance(kind, str):
            message = enum_message(RECIPIENT_TYPES, kind)
            errors.add(f"{path}.recipient.type", message, "invalid_enum_value")
        else:
            type_error(errors, f"{path}.recipient.type", "string", kind)
        return config
    if kind != RECIPIENT_CUSTOM:
        return config
    address = check_email(
        errors, recipient.get("customEmail", MISSING), f"{path}.recipient.customEmail"
    )
    if address is None:
        return config
    return {**config, "recipient": {**recipient, "customEmail": address}}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def project_template_exists(project, template_id: str) -> bool:
    from ..models import Template

    rows = Template.objects.using(db_for_write())  # a template made a moment ago counts
    return rows.filter(project_id=project.pk, pk=template_id).exists()


def _check_webhook(errors: FieldErrorList, config: dict, path: str) -> None:
    url = config.get("url", MISSING)
    if not isinstance(url, str):
        type_error(errors, f"{path}.url", "string", url)
    elif len(url) > WEBHOOK_URL_MAX_LENGTH:
        message = f"String must contain at most {WEBHOOK_URL_MAX_LENGTH} character(s)"
        errors.add(f"{path}.url", message, "too_big")
    else:
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            errors.add(f"{path}.url", "Invalid url: an http:// or https:// URL", "invalid_string")
    method = config.get("method", "POST")
    if method not in WEBHOOK_METHODS:
        if isinstance(method, str):
            message = enum_message(WEBHOOK_METHODS, method)
            errors.add(f"{path}.method", message, "invalid_enum_value")
        else:
            type_error(errors, f"{path}.method", "string", method)
    headers = config.get("headers")
    if headers is not None:
        if not isinstance(headers, dict):
            type_error(errors, f"{path}.headers", "object", headers)
        else:
            for key, value in headers.items():
                if not isinstance(value, str):
                    type_error(errors, f"{path}.headers.{key}", "string", value)


def _check_update_contact(errors: FieldErrorList, config: dict, path: str) -> None:
    updates = config.get("updates")
    if updates is not None:
        check_data(errors, updates, f"{path}.updates")
    action = config.get("subscriptionAction")
    if action is not None and action not in SUBSCRIPTION_ACTIONS:
        if isinstance(action, str):
            message = enum_message(SUBSCRIPTION_ACTIONS, action)
            errors.add(f"{path}.subscriptionAction", message, "invalid_enum_value")
        else:
            type_error(errors, f"{path}.subscriptionAction", "string", action)
        return
    if not (isinstance(updates, dict) and updates) and action in (None, "none"):
        message = "Provide at least one field to update or a subscription action"
        errors.add(path, message, "custom")


def _check_exit(errors: FieldErrorList, config: dict, path: str) -> None:
    reason = config.get("reason")
    if reason is not None and not isinstance(reason, str):
        type_error(errors, f"{path}.reason", "string", reason)


def check_step_config(
    errors: FieldErrorList, step_type: str, config: Any, path: str, *, project=None
) -> dict:
    """The rules of ``step_type``'s config; returns the config to store (WAIT_FOR_EVENT's
    event name trimmed, a custom recipient's address normalised). ``None`` is an empty config.
    With ``project``, a SEND_EMAIL's template must be one of the project's."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        type_error(errors, path, "object", config)
        return {}
    if step_type == Type.WAIT_FOR_EVENT:
        return _check_wait(errors, config, path)
    if step_type == Type.SEND_EMAIL:
        return _check_send_email(errors, config, path, project)
    checks = {
        Type.DELAY: _check_delay,
        Type.WEBHOOK: _check_webhook,
        Type.UPDATE_CONTACT: _check_update_contact,
        Type.EXIT: _check_exit,
        Type.CONDITION: validate_condition_config,
    }
    check = checks.get(step_type)
    if check is not None:
        check(errors, config, path)
    return config


def condition_branches(config: Any) -> tuple[str, ...]:
    """The branches a CONDITION config routes to: ``yes``/``no``, or the multi-branch ids
    and ``default``."""
    if isinstance(config, dict) and config.get("mode") == "multi":
        branches = config.get("branches") or []
        ids = [b["id"] for b in branches if isinstance(b, dict) and isinstance(b.get("id"), str)]
        return (*ids, DEFAULT_BRANCH)
    return BINARY_BRANCHES


def has_timeout(config: Any) -> bool:
    return isinstance(config, dict) and bool(config.get("timeout"))


TRIGGER_IN_LIST = "The TRIGGER step is created from eventName; send only the steps after it"


def validate_steps(
    steps: Any, field: str = "steps", *, project=None
) -> tuple[list[dict], list[dict]]:
    """Check the list of steps that follow the trigger (``POST /workflows``, a linear chain);
    returns ``(steps to store, errors)``. Nothing may follow an EXIT step: it ends the chain.
    With ``project``, SEND_EMAIL templates must be the project's."""
    errors = FieldErrorList()
    if not isinstance(steps, list):
        type_error(errors, field, "array", steps)
        return [], list(errors)
    clean = []
    for index, step in enumerate(steps):
        path = f"{field}.{index}"
        if not isinstance(step, dict):
            type_error(errors, path, "object", step)
            continue
        step_type = check_step_type(
            errors, step.get("type", MISSING), f"{path}.type", trigger_message=TRIGGER_IN_LIST
        )
        name = check_step_name(errors, step.get("name", MISSING), f"{path}.name")
        config = step.get("config")
        if step_type is not None:
            config = check_step_config(errors, step_type, config, f"{path}.config", project=project)
        elif config is not None and not isinstance(config, dict):
            type_error(errors, f"{path}.config", "object", config)
        before = steps[index - 1] if index else None
        if isinstance(before, dict) and before.get("type") == Type.EXIT:
            message = "An EXIT step ends the chain: no step can follow it"
            errors.add(f"{path}.type", message, "custom")
        clean.append({"type": step_type, "name": name, "config": config or {}})
    return clean, list(errors)


def steps_or_raise(steps: Any, *, project=None) -> list[dict]:
    clean, errors = validate_steps(list(steps), project=project)
    if errors:
        raise ValidationFailed(errors)
    return clean
