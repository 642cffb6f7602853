"""What workflow steps compute from a contact and an execution's context.

- :func:`step_variables` / :func:`render` / :func:`render_value`: the ``{{var}}`` scope and
  renderer of WEBHOOK steps (and of email bodies, with ``escape``). Stored templates are user
  input, so this is plain placeholder substitution, never a template language.
- :func:`field_scope` / :func:`evaluate_condition`: CONDITION steps. Comparisons follow Plunk's
  JavaScript (``===``, ``String()``, ``Number()``), not Python's, so a contact takes the same
  branch here as in Plunk: ``1`` is not ``"1"``, ``"10" > 9``, ``true`` counts as 1.
- :func:`validate_condition_config`: the graph-editing code's check of a CONDITION config; the
  evaluation runs the same structural checks, so what validates is what evaluates.

Pure: no database access; the runtime passes the contact and the context as plain dicts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from .conditions import COMPARISON_OPERATORS, PRESENCE_OPERATORS
from .errors import FieldErrorList
from .validation import MISSING, enum_message, type_error

__all__ = [
    "MISSING",
    "ConditionError",
    "evaluate_condition",
    "field_scope",
    "render",
    "render_value",
    "resolve_field",
    "step_variables",
    "validate_condition_config",
]

#: The ten CONDITION operators, in Plunk's order.
OPERATORS = (*COMPARISON_OPERATORS, *PRESENCE_OPERATORS)
#: Most branches of a multi-branch CONDITION.
MAX_BRANCHES = 20
#: The route of a multi-branch CONDITION when no branch matches (so no branch may use it).
DEFAULT_BRANCH = "default"


class ConditionError(ValueError):
    """A CONDITION config the runtime cannot evaluate (the step fails with this message)."""


# ---------------------------------------------------------------------------------------------
# Scopes


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def step_variables(contact: Mapping, context: Any, *, extra: Mapping | None = None) -> dict:
    """The ``{{var}}`` scope of SEND_EMAIL and WEBHOOK steps.

    ``contact`` has ``id``, ``email``, ``subscribed`` and ``data``. Later keys win, as in
    Plunk: contact data, then the context's keys, then ``data`` (the contact data) and
    ``event`` (the context, i.e. the trigger event's data), then ``extra`` (the email issue's
    unsubscribe/subscribe/manage URLs).
    """
    data = _as_dict(contact.get("data"))
    ctx = _as_dict(context)
    return {
        "id": str(contact["id"]) if contact.get("id") is not None else None,
        "email": contact.get("email"),
        "subscribed": contact.get("subscribed"),
        **data,
        **ctx,
        "data": data,
        "event": ctx,
        **(extra or {}),
    }


def field_scope(contact: Mapping, context: Any) -> dict:
    """What a CONDITION ``field`` path is resolved against (:func:`resolve_field`)."""
    ctx = _as_dict(context)
    return {
        "contact": {"email": contact.get("email"), "subscribed": contact.get("subscribed")},
        "data": _as_dict(contact.get("data")),
        "workflow": ctx,
        "event": ctx,
    }


_INDEX = re.compile(r"0|[1-9][0-9]*")


def _member(value: Any, key: str) -> Any:
    """``value[key]`` where JavaScript's ``key in value`` holds for JSON values: an object's
    own keys, an array's indexes and its ``length``; else MISSING."""
    if isinstance(value, dict):
        return value.get(key, MISSING)
    if isinstance(value, list):
        if key == "length":
            return len(value)
        if _INDEX.fullmatch(key) and int(key) < len(value):
            return value[int(key)]
    return MISSING


def resolve_field(field: str, scope: Mapping) -> Any:
    """The value at a dotted ``field`` path in ``scope``, or MISSING (JS ``undefined``).

    ``contact.data.X`` is read as ``data.X`` (Plunk's UI once showed that spelling).
    """
    if field.startswith("contact.data."):
        field = field[len("contact.") :]
    value: Any = scope
    for part in field.split("."):
        value = _member(value, part)
        if value is MISSING:
            return MISSING
    return value


# ---------------------------------------------------------------------------------------------
# JavaScript's conversions (ECMA-262 Number::toString, ToString, ToNumber, ===)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer past the largest double: JS reads it as Infinity
        return math.inf if value > 0 else -math.inf


def js_number_text(value: int | float) -> str:
    """How JavaScript prints a number: ``1`` for 1.0, ``1e+21``, ``1e-7``, ``0.000001``.

    Integers below 1e21 print exactly (JS would round past 2**53: we keep what was stored).
    """
    if isinstance(value, int) and abs(value) < 10**21:
        return str(value)
    number = _float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    if number < 0:
        return "-" + js_number_text(-number)
    # repr() gives the shortest digits that round-trip, which is what JS prints too.
    _, digit_tuple, exponent = Decimal(repr(number)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    k, n = len(digits), int(exponent) + len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
    return f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"


def js_string(value: Any) -> str:
    """JavaScript's ``String(value)``: what ``contains`` searches in."""
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return js_number_text(value)
    if isinstance(value, list):
        return ",".join(
            "" if item is None or item is MISSING else js_string(item) for item in value
        )
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


#: What ``Number()`` trims: JS WhiteSpace and LineTerminator (not all of Python's isspace()).
_JS_SPACE = "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")


def js_number(value: Any) -> float:
    """JavaScript's ``Number(value)``: what the ordering operators compare.

    ``""`` and ``null`` are 0, booleans 0/1, ``"0x1f"`` 31, ``" 12 "`` 12, ``"12px"`` NaN,
    ``[5]`` 5, objects NaN.
    """
    if value is MISSING:
        return math.nan
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if _is_number(value):
        return _float(value)
    if isinstance(value, list):
        return js_number(js_string(value))
    if not isinstance(value, str):
        return math.nan
    text = value.strip(_JS_SPACE)
    if not text:
        return 0.0
    if _RADIX.fullmatch(text):
        return _float(int(text, 0))
    if _DECIMAL.fullmatch(text):
        return float(text)
    return math.nan


def js_strict_equals(left: Any, right: Any) -> bool:
    """JavaScript's ``left === right`` for JSON values (MISSING is ``undefined``)."""
    if left is MISSING or right is MISSING or left is None or right is None:
        return left is right
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) and _is_number(right):
        return _float(left) == _float(right)
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    # Objects and arrays are equal only to themselves, and a value read from contact data is
    # never the very object written in a step's config.
    return False


def _absent(value: Any) -> bool:
    return value is MISSING or value is None


def compare(actual: Any, operator: str, expected: Any = MISSING) -> bool:
    """One CONDITION operator; an absent (missing or null) field matches only ``equals``
    ``undefined``/``null`` and ``notExists``."""
    if operator == "equals":
        return js_strict_equals(actual, expected)
    if operator == "exists":
        return not _absent(actual)
    if operator == "notExists":
        return _absent(actual)
    if operator not in OPERATORS:
        raise ConditionError(f"Unknown operator: {operator}")
    if _absent(actual):
        return False
    if operator == "notEquals":
        return not js_strict_equals(actual, expected)
    if operator == "contains":
        return js_string(expected) in js_string(actual)
    if operator == "notContains":
        return js_string(expected) not in js_string(actual)
    left, right = js_number(actual), js_number(expected)
    if operator == "greaterThan":
        return left > right
    if operator == "lessThan":
        return left < right
    if operator == "greaterThanOrEqual":
        return left >= right
    return left <= right


# ---------------------------------------------------------------------------------------------
# CONDITION configs

#: Paths that can resolve; any other path is always missing, so every contact would take the
#: same branch.
_RESOLVABLE = re.compile(
    r"contact\.(?:email|subscribed)|(?:contact\.data|data|event|workflow)\..+", re.DOTALL
)
_UNRESOLVABLE = (
    'Field "{field}" never resolves: use contact.email, contact.subscribed, data.<key> '
    "(contact data), or event.<key> / workflow.<key> (data of the event that started the "
    "workflow)"
)


def _check_text(errors: FieldErrorList, value: Any, path: str) -> bool:
    if not isinstance(value, str):
        type_error(errors, path, "string", value)
        return False
    if not value:
        errors.add(path, "String must contain at least 1 character(s)", "too_small")
        return False
    return True


def _check_field(errors: FieldErrorList, config: dict, path: str, check_path: bool) -> None:
    field = config.get("field", MISSING)
    valid = _check_text(errors, field, f"{path}.field")
    if valid and check_path and not _RESOLVABLE.fullmatch(field):
        errors.add(f"{path}.field", _UNRESOLVABLE.format(field=field), "custom")


def _check_operator(errors: FieldErrorList, value: Any, path: str) -> None:
    if not isinstance(value, str):
        type_error(errors, path, "string", value)
    elif value not in OPERATORS:
        errors.add(path, enum_message(OPERATORS, value), "invalid_enum_value")


def _check_branches(errors: FieldErrorList, branches: Any, path: str) -> None:
    if not isinstance(branches, list):
        type_error(errors, path, "array", branches)
        return
    if not branches:
        errors.add(path, "Array must contain at least 1 element(s)", "too_small")
    elif len(branches) > MAX_BRANCHES:
        errors.add(path, f"Array must contain at most {MAX_BRANCHES} element(s)", "too_big")
    seen: set[str] = set()
    for index, branch in enumerate(branches):
        branch_path = f"{path}.{index}"
        if not isinstance(branch, dict):
            type_error(errors, branch_path, "object", branch)
            continue
        branch_id = branch.get("id", MISSING)
        if _check_text(errors, branch_id, f"{branch_path}.id"):
            if branch_id == DEFAULT_BRANCH:
                message = f'Branch id "{DEFAULT_BRANCH}" is the route when no branch matches'
                errors.add(f"{branch_path}.id", message, "custom")
            elif branch_id in seen:
                errors.add(f"{branch_path}.id", f'Branch id "{branch_id}" is used twice', "custom")
            seen.add(branch_id)
        _check_text(errors, branch.get("name", MISSING), f"{branch_path}.name")
        _check_operator(errors, branch.get("operator", MISSING), f"{branch_path}.operator")


def _condition_errors(
    errors: FieldErrorList, config: Any, path: str, *, check_path: bool = True
) -> None:
    if not isinstance(config, dict):
        type_error(errors, path, "object", config)
        return
    _check_field(errors, config, path, check_path)
    mode = config.get("mode", MISSING)
    if mode == "multi":
        _check_branches(errors, config.get("branches", MISSING), f"{path}.branches")
    elif mode is not MISSING:
        errors.add(f"{path}.mode", 'Invalid literal value, expected "multi"', "invalid_literal")
    else:
        _check_operator(errors, config.get("operator", MISSING), f"{path}.operator")


def validate_condition_config(errors: FieldErrorList, config: Any, path: str) -> None:
    """Add to ``errors`` what is wrong with a CONDITION step's ``config`` (at ``path``).

    Binary ``{field, operator, value?}`` or multi ``{mode: "multi", field, branches: [1..20
    {id, name, operator, value?}]}``, as Plunk's schema; stricter than Plunk on two points that
    would otherwise route silently: the field must be a path that can resolve, and branch ids
    must be unique and not ``default``.
    """
    _condition_errors(errors, config, path)


def _checked(config: Any) -> dict:
    errors = FieldErrorList()
    _condition_errors(errors, config, "config", check_path=False)
    if errors:
        raise ConditionError("; ".join(f"{e['field']}: {e['message']}" for e in errors))
    return config


def evaluate_condition(config: Any, scope: Mapping) -> dict:
    """Evaluate a CONDITION config against a :func:`field_scope`; returns the step's output.

    Binary: ``{field, operator, expectedValue, actualValue, result, branch: yes|no}``
    (``expectedValue`` absent when the config has no value, a missing ``actualValue`` is
    null). Multi: ``{field, mode, matchedBranch, actualValue, branch}``, ``branch`` being the
    first matching branch's id, else ``default``. Raises :class:`ConditionError` for a config
    that cannot be evaluated.
    """
    config = _checked(config)
    field = config["field"]
    actual = resolve_field(field, scope)
    if config.get("mode") == "multi":
        output: dict[str, Any] = {"field": field, "mode": "multi"}
        matched = next(
            (
                branch
                for branch in config["branches"]
                if compare(actual, branch["operator"], branch.get("value", MISSING))
            ),
            None,
        )
        output["matchedBranch"] = matched["name"] if matched else DEFAULT_BRANCH
        if actual is not MISSING:
            output["actualValue"] = actual
        output["branch"] = matched["id"] if matched else DEFAULT_BRANCH
        return output
    operator = config["operator"]
    expected = config.get("value", MISSING)
    result = compare(actual, operator, expected)
    output = {"field": field, "operator": operator}
    if expected is not MISSING:
        output["expectedValue"] = expected
    output["actualValue"] = None if actual is MISSING else actual
    output["result"] = result
    output["branch"] = "yes" if result else "no"
    return output


# ---------------------------------------------------------------------------------------------
# Rendering

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def js_json(value: Any) -> str:
    """``JSON.stringify`` spelling (no spaces, JS numbers) of a JSON value."""
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{js_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(js_json(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return js_number_text(value) if math.isfinite(_float(value)) else "null"
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def _text(value: Any) -> str:
    """A variable's value as placeholder text: strings as they are, numbers and booleans as
    JavaScript prints them, objects and arrays as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or _is_number(value):
        return js_string(value)
    if isinstance(value, dict | list | tuple):
        return js_json(value)
    return str(value)


def _lookup_path(container: Any, path: str) -> Any:
    """A key as written (keys may contain dots or spaces), else split at the first dot."""
    found = _member(container, path)
    if found is not MISSING:
        return found
    head, dot, rest = path.partition(".")
    if not dot:
        return MISSING
    child = _member(container, head)
    return _lookup_path(child, rest) if isinstance(child, dict | list) else MISSING


def _lookup(variables: dict, key: str) -> Any:
    if not key:
        return MISSING
    value = _lookup_path(variables, key)
    if _absent(value):  # Plunk's last resort: a bare contact-data key
        value = _as_dict(variables.get("data")).get(key, MISSING)
    return value


def _split_default(inner: str) -> tuple[str, str | None]:
    """``key ?? default``: the default is a literal, quoted or bare (the first of several)."""
    key, separator, rest = inner.partition("??")
    if not separator:
        return key.strip(), None
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end > 0:
            return key.strip(), rest[1:end]
    return key.strip(), rest.split("??")[0].strip()


def render(text: str, variables: Mapping, *, escape: Callable[[str], str] | None = None) -> str:
    """Replace ``{{key}}``, ``{{ key.path }}`` and ``{{key ?? default}}`` in ``text``.

    A missing or null value gives the default, else nothing; ``escape`` (e.g.
    ``django.utils.html.escape`` for email bodies) is applied to every substituted text,
    defaults included, never to the template around them.
    """
    scope = variables if isinstance(variables, dict) else dict(variables)

    def substitute(match: re.Match) -> str:
        key, default = _split_default(match.group(1))
        value = _lookup(scope, key)
        if _absent(value):
            if default is None:
                return ""
            result = default
        else:
            result = _text(value)
        return escape(result) if escape else result

    return _PLACEHOLDER.sub(substitute, text)


def render_value(value: Any, variables: Mapping, **kwargs: Any) -> Any:
    """:func:`render` every string inside nested dicts and lists (a webhook's body or header
    values); keys and non-string values are kept as they are."""
    if isinstance(value, str):
        return render(value, variables, **kwargs)
    if isinstance(value, dict):
        return {key: render_value(item, variables, **kwargs) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, variables, **kwargs) for item in value]
    return value
