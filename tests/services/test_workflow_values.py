"""Workflow step values (``services/workflow_values.py``): the ``{{var}}`` scope and renderer,
CONDITION field paths and operators with JavaScript's semantics, and CONDITION config checks.

The operators are pinned three ways: examples (Plunk's own test cases), a property test against
a table of JavaScript conversions written out below, and, where ``node`` is installed, a
differential run against real JavaScript.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
import subprocess

import pytest
from django.utils.html import escape
from hypothesis import given
from hypothesis import strategies as st

from plunk_events.services.errors import FieldErrorList
from plunk_events.services.workflow_values import (
    MISSING,
    OPERATORS,
    ConditionError,
    compare,
    evaluate_condition,
    field_scope,
    js_number,
    js_number_text,
    js_string,
    render,
    render_value,
    resolve_field,
    step_variables,
    validate_condition_config,
)

CONTACT = {
    "id": "8c7f7a52-3f5e-4a3b-9a53-8c1f0f0d2a11",
    "email": "ada@example.com",
    "subscribed": True,
    "data": {"plan": "pro", "score": 0, "first name": "Ada", "tags": ["a", "b"], "o": {"k": 1}},
}
CONTEXT = {"order": {"total": 12.5, "items": [{"sku": "X1"}]}, "plan": "from-event"}


# ---------------------------------------------------------------------------------------------
# Scope


def test_step_variables_layer_contact_data_then_context_then_namespaces():
    variables = step_variables(CONTACT, CONTEXT, extra={"unsubscribeUrl": "https://u/1"})
    assert variables == {
        "id": CONTACT["id"],
        "email": "ada@example.com",
        "subscribed": True,
        "plan": "from-event",  # the context's key wins over the contact's
        "score": 0,
        "first name": "Ada",
        "tags": ["a", "b"],
        "o": {"k": 1},
        "order": CONTEXT["order"],
        "data": CONTACT["data"],
        "event": CONTEXT,
        "unsubscribeUrl": "https://u/1",
    }


def test_step_variables_tolerate_missing_data_and_context():
    contact = {"id": 7, "email": "x@example.com", "subscribed": False, "data": None}
    assert step_variables(contact, None) == {
        "id": "7",
        "email": "x@example.com",
        "subscribed": False,
        "data": {},
        "event": {},
    }
    assert step_variables(contact, ["not", "an", "object"])["event"] == {}


def test_field_scope_exposes_only_plunks_paths():
    assert field_scope(CONTACT, CONTEXT) == {
        "contact": {"email": "ada@example.com", "subscribed": True},
        "data": CONTACT["data"],
        "workflow": CONTEXT,
        "event": CONTEXT,
    }


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("contact.email", "ada@example.com"),
        ("contact.subscribed", True),
        ("data.plan", "pro"),
        ("contact.data.plan", "pro"),  # the legacy spelling
        ("data.first name", "Ada"),
        ("event.order.total", 12.5),
        ("workflow.order.total", 12.5),
        ("event.order.items.0.sku", "X1"),
        ("data.tags.length", 2),
        ("data.score", 0),
        ("contact.id", MISSING),  # not in the scope
        ("contact.data", MISSING),
        ("data.tags.2", MISSING),
        ("data.tags.01", MISSING),  # not an array index in JavaScript
        ("data.plan.length", MISSING),  # strings are not objects
        ("data.score.x", MISSING),
        ("data.nothing", MISSING),
        ("", MISSING),
    ],
)
def test_resolve_field(field, expected):
    assert resolve_field(field, field_scope(CONTACT, CONTEXT)) == expected


def test_missing_is_not_null():
    scope = field_scope({**CONTACT, "data": {"gone": None}}, {})
    assert resolve_field("data.gone", scope) is None
    assert resolve_field("data.never", scope) is MISSING
    assert resolve_field("data.gone.deeper", scope) is MISSING


# ---------------------------------------------------------------------------------------------
# Rendering


VARIABLES = step_variables(CONTACT, CONTEXT)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{email}}!", "Hello ada@example.com!"),
        ("{{ email }}", "ada@example.com"),
        ("{{\n email \n}}", "ada@example.com"),
        ("{{data.plan}}/{{plan}}", "pro/from-event"),
        ("{{event.order.total}}", "12.5"),
        ("{{order.items.0.sku}}", "X1"),
        ("{{first name}}", "Ada"),
        ("{{data.first name}}", "Ada"),
        ("[{{score}}]", "[0]"),  # falsy values render, as Plunk's renderer does today
        ("[{{subscribed}}]", "[true]"),
        ("{{tags}}", '["a","b"]'),
        ("{{o}}", '{"k":1}'),
        ("{{id}}", CONTACT["id"]),
        ("Hi {{nickname ?? there}}!", "Hi there!"),
        ("Hi {{nickname ?? 'dear friend'}}!", "Hi dear friend!"),
        ('Hi {{nickname ?? "a ?? b"}}!', "Hi a ?? b!"),
        ("{{nickname ?? b ?? c}}", "b"),
        ("{{nickname ?? ''}}", ""),
        ("{{plan ?? fallback}}", "from-event"),
        ("{{nickname}}|{{a.b.c}}|{{}}|{{ }}", "|||"),
        ("<style>a { color: red }</style>", "<style>a { color: red }</style>"),
        ("<style>a{{color:red}}</style>", "<style>a</style>"),
        ("{{ | | }}", ""),
        ("{{email}} and {{ unclosed", "ada@example.com and {{ unclosed"),
    ],
)
def test_render(template, expected):
    assert render(template, VARIABLES) == expected


def test_render_prints_numbers_as_javascript_does():
    variables = {"a": 1.0, "b": 1e21, "c": 1e-7, "d": 0.000001, "e": -0.0, "f": 10**22, "g": 2.5}
    assert render("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}}", variables) == (
        "1 1e+21 1e-7 0.000001 0 1e+22 2.5"
    )


def test_render_falls_back_to_a_bare_contact_data_key():
    variables = {"data": {"plan": "pro"}, "plan": None}
    assert render("{{plan}}", variables) == "pro"


def test_null_takes_the_default():
    assert render("{{x ?? none}}", {"x": None}) == "none"
    assert render("[{{x}}]", {"x": None}) == "[]"


def test_escape_applies_to_substituted_text_only():
    variables = {"name": "<b>Tom & Jerry</b>", "tags": ["<i>"]}
    rendered = render("<p>{{name}} {{tags}} {{x ?? <none>}}</p>", variables, escape=escape)
    assert rendered == (
        "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt; [&quot;&lt;i&gt;&quot;] &lt;none&gt;</p>"
    )


def test_render_never_evaluates_template_tags():
    """Stored templates are user input: no Django (or other) template language runs."""
    text = "{% load static %}{% debug %}{{ settings.SECRET_KEY }}{{ email|upper }}"
    assert render(text, VARIABLES) == "{% load static %}{% debug %}"


def test_render_value_renders_nested_strings_and_keeps_the_rest():
    body = {
        "to": "{{email}}",
        "{{plan}}": ["{{score}}", 3, None, True, {"nested": "plan={{data.plan}}"}],
    }
    assert render_value(body, VARIABLES) == {
        "to": "ada@example.com",
        "{{plan}}": ["0", 3, None, True, {"nested": "plan=pro"}],
    }
    assert render_value(42, VARIABLES) == 42


@given(st.text().filter(lambda t: "{{" not in t))
def test_text_without_placeholders_is_unchanged(text):
    assert render(text, VARIABLES) == text


@given(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_ ]{0,15}", fullmatch=True).map(str.strip),
    st.text(),
)
def test_a_string_variable_renders_verbatim(key, value):
    assert render(f"<{{{{ {key} }}}}>", {key: value}) == f"<{value}>"
    assert render(f"{{{{{key}}}}}", {key: value}, escape=escape) == escape(value)


# ---------------------------------------------------------------------------------------------
# JavaScript conversions


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_text_round_trips_in_javascripts_format(number):
    text = js_number_text(number)
    assert float(text) == number
    assert js_number(text) == number
    assert re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[+-][0-9]+)?", text)
    if 1e-6 <= abs(number) < 1e21:
        assert "e" not in text
    else:
        assert "e" in text or number == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  42\n", 42),
        ("0x1F", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("-0x10", math.nan),
        ("1_000", math.nan),
        ("1e400", math.inf),
        ("-Infinity", -math.inf),
        ("inf", math.nan),
        ("\u2028 7 \ufeff", 7),
        ("\x1c7", math.nan),  # Python's strip() would remove \x1c, JavaScript's does not
        ("\u0967", math.nan),  # a Devanagari digit
    ],
)
def test_number_of_strings(text, expected):
    got = js_number(text)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


# ---------------------------------------------------------------------------------------------
# Operators: a table of JavaScript semantics (typeof, String(x), Number(x)) for each value


NAN = math.nan
JS_TABLE = [
    (MISSING, "undefined", "undefined", NAN),
    (None, "object-null", "null", 0),
    (True, "boolean", "true", 1),
    (False, "boolean", "false", 0),
    (0, "number", "0", 0),
    (1, "number", "1", 1),
    (1.0, "number", "1", 1),
    (-1.5, "number", "-1.5", -1.5),
    (1e21, "number", "1e+21", 1e21),
    (1e-7, "number", "1e-7", 1e-7),
    (0.000001, "number", "0.000001", 0.000001),
    ("", "string", "", 0),
    (" ", "string", " ", 0),
    ("1", "string", "1", 1),
    ("01", "string", "01", 1),
    (" 12 ", "string", " 12 ", 12),
    ("12px", "string", "12px", NAN),
    ("0x1f", "string", "0x1f", 31),
    ("1e3", "string", "1e3", 1000),
    (".5", "string", ".5", 0.5),
    ("+5", "string", "+5", 5),
    ("Infinity", "string", "Infinity", math.inf),
    ("nan", "string", "nan", NAN),
    ("abc", "string", "abc", NAN),
    ("Abc", "string", "Abc", NAN),
    ("true", "string", "true", NAN),
    ("null", "string", "null", NAN),
    ("[object Object]", "string", "[object Object]", NAN),
    ([], "object", "", 0),
    ([5], "object", "5", 5),
    ([1, 2], "object", "1,2", NAN),
    (["a", None], "object", "a,", NAN),
    ({}, "object", "[object Object]", NAN),
    ({"a": 1}, "object", "[object Object]", NAN),
]


def js_reference(operator, actual_row, expected_row):
    """What JavaScript answers, from the table's columns alone."""
    actual, actual_type, actual_string, actual_number = actual_row
    expected, expected_type, expected_string, expected_number = expected_row
    absent = actual_type in ("undefined", "object-null")
    strictly_equal = actual_type == expected_type and (
        actual_type in ("undefined", "object-null")
        or (actual_type == "number" and actual_number == expected_number)
        or (actual_type in ("boolean", "string") and actual == expected)
    )
    return {
        "equals": strictly_equal,
        "notEquals": not absent and not strictly_equal,
        "contains": not absent and expected_string in actual_string,
        "notContains": not absent and expected_string not in actual_string,
        "greaterThan": not absent and actual_number > expected_number,
        "lessThan": not absent and actual_number < expected_number,
        "greaterThanOrEqual": not absent and actual_number >= expected_number,
        "lessThanOrEqual": not absent and actual_number <= expected_number,
        "exists": not absent,
        "notExists": absent,
    }[operator]


@pytest.mark.parametrize(
    "row", JS_TABLE, ids=lambda row: "MISSING" if row[0] is MISSING else repr(row[0])
)
def test_conversions_match_the_table(row):
    value, _, string, number = row
    assert js_string(value) == string
    got = js_number(value)
    assert (math.isnan(got) and math.isnan(number)) or got == number


def fresh(value):
    """A deep copy (no object shared between the two sides), MISSING kept as itself."""
    return value if value is MISSING else copy.deepcopy(value)


rows = st.sampled_from(JS_TABLE).map(lambda row: (fresh(row[0]), *row[1:]))


@given(st.sampled_from(OPERATORS), rows, rows)
def test_operators_follow_javascript(operator, actual_row, expected_row):
    assert compare(actual_row[0], operator, expected_row[0]) is js_reference(
        operator, actual_row, expected_row
    )


@given(st.sampled_from(OPERATORS), rows, rows)
def test_a_binary_condition_routes_by_the_operator(operator, actual_row, expected_row):
    config = {"field": "data.x", "operator": operator, "value": expected_row[0]}
    data = {} if actual_row[0] is MISSING else {"x": actual_row[0]}
    output = evaluate_condition(config, field_scope({**CONTACT, "data": data}, {}))
    expected = js_reference(operator, actual_row, expected_row)
    assert output["result"] is expected
    assert output["branch"] == ("yes" if expected else "no")


JS_EVALUATOR = r"""
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const value = (c) => ('missing' in c ? undefined : c.value);
const absent = (a) => a === undefined || a === null;
const ops = {
  equals: (a, e) => a === e,
  notEquals: (a, e) => !absent(a) && a !== e,
  contains: (a, e) => !absent(a) && String(a).includes(String(e)),
  notContains: (a, e) => !absent(a) && !String(a).includes(String(e)),
  greaterThan: (a, e) => !absent(a) && Number(a) > Number(e),
  lessThan: (a, e) => !absent(a) && Number(a) < Number(e),
  greaterThanOrEqual: (a, e) => !absent(a) && Number(a) >= Number(e),
  lessThanOrEqual: (a, e) => !absent(a) && Number(a) <= Number(e),
  exists: (a) => !absent(a),
  notExists: (a) => absent(a),
};
process.stdout.write(JSON.stringify(cases.map(([a, op, e]) => ops[op](value(a), value(e)))));
"""

EXTRA_VALUES = [
    2**53 + 1,
    123456789.125,
    -0.0,
    "-0",
    "0b11",
    "0o7",
    "5.",
    "-0x10",
    "\u00a012\u00a0",
    "\x1c5",
    "1_0",
    "\u0661",
    "a,b",
    "undefined",
    [[1, 2], 3],
    [None],
    [True],
    {"length": 1},
    "é",
    "contains é",
]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for real JavaScript")
def test_operators_agree_with_node():
    """Seeded random cases over the table and more values, answered by real JavaScript."""
    values = [row[0] for row in JS_TABLE] + EXTRA_VALUES
    rng = random.Random(10)
    cases = [(rng.choice(values), rng.choice(OPERATORS), rng.choice(values)) for _ in range(5000)]

    def encode(value):
        return {"missing": True} if value is MISSING else {"value": value}

    payload = json.dumps([[encode(a), op, encode(e)] for a, op, e in cases])
    answers = json.loads(
        subprocess.run(
            ["node", "-e", JS_EVALUATOR], input=payload, capture_output=True, text=True, check=True
        ).stdout
    )
    mismatches = [
        (a, op, e, want)
        for (a, op, e), want in zip(cases, answers, strict=True)
        if compare(fresh(a), op, fresh(e)) is not want
    ]
    assert mismatches == []


# ---------------------------------------------------------------------------------------------
# Operators by example (Plunk's own cases)


def branch(config, data=None, contact=None, context=None):
    person = {**CONTACT, **(contact or {}), "data": data or {}}
    return evaluate_condition(config, field_scope(person, context or {}))["branch"]


@pytest.mark.parametrize(
    ("data", "field", "operator", "value", "expected"),
    [
        ({"plan": "premium"}, "plan", "equals", "premium", "yes"),
        ({"plan": "basic"}, "plan", "equals", "premium", "no"),
        ({"plan": "premium"}, "plan", "notEquals", "basic", "yes"),
        ({"plan": "basic"}, "plan", "notEquals", "basic", "no"),
        ({}, "plan", "notEquals", "basic", "no"),  # missing never matches notEquals
        ({"company": "Acme Corporation"}, "company", "contains", "Acme", "yes"),
        ({"company": "acme corporation"}, "company", "contains", "Acme", "no"),  # case-sensitive
        ({"other": "value"}, "company", "contains", "Acme", "no"),
        ({"company": "Other Industries"}, "company", "notContains", "Acme", "yes"),
        ({"other": "value"}, "company", "notContains", "Acme", "no"),
        ({"score": 100}, "score", "greaterThan", 50, "yes"),
        ({"score": 50}, "score", "greaterThan", 50, "no"),
        ({"score": "100"}, "score", "greaterThan", 50, "yes"),  # Number("100")
        ({"temperature": -5}, "temperature", "lessThan", 0, "yes"),
        ({"score": 50}, "score", "greaterThanOrEqual", 50, "yes"),
        ({"score": 50}, "score", "lessThanOrEqual", 49.5, "no"),
        ({"score": "abc"}, "score", "lessThan", 10, "no"),  # NaN compares false both ways
        ({"score": "abc"}, "score", "greaterThanOrEqual", 10, "no"),
        ({"score": ""}, "score", "lessThanOrEqual", 0, "yes"),  # Number("") is 0
        ({"vip": True}, "vip", "greaterThan", 0, "yes"),  # true is 1
        ({"score": None}, "score", "lessThan", 10, "no"),  # null counts as missing
        ({"count": 1}, "count", "equals", "1", "no"),  # strict
        ({"count": 1}, "count", "equals", 1.0, "yes"),
        ({"flag": True}, "flag", "contains", "ru", "yes"),  # String(true)
        ({"tags": ["a", "b"]}, "tags", "contains", "a,b", "yes"),  # String(array)
        ({"o": {"a": 1}}, "o", "contains", "object", "yes"),  # "[object Object]"
        ({"o": {"a": 1}}, "o", "equals", {"a": 1}, "no"),  # objects are never ===
        ({"name": ""}, "name", "exists", None, "yes"),
        ({"name": None}, "name", "exists", None, "no"),
        ({"name": None}, "name", "notExists", None, "yes"),
        ({}, "name", "notExists", None, "yes"),
    ],
)
def test_operator_examples(data, field, operator, value, expected):
    config = {"field": f"data.{field}", "operator": operator, "value": value}
    assert branch(config, data) == expected


def test_missing_equals_a_missing_value_but_not_null():
    assert branch({"field": "data.nothing", "operator": "equals"}) == "yes"
    assert branch({"field": "data.nothing", "operator": "equals", "value": None}) == "no"
    assert branch({"field": "data.gone", "operator": "equals", "value": None}, {"gone": None}) == (
        "yes"
    )


def test_contact_fields_and_event_paths():
    assert branch({"field": "contact.subscribed", "operator": "equals", "value": True}) == "yes"
    assert branch({"field": "contact.email", "operator": "contains", "value": "@example"}) == "yes"
    event = {"order": {"total": 120}}
    config = {"field": "event.order.total", "operator": "greaterThan", "value": 100}
    assert branch(config, context=event) == "yes"
    assert branch({**config, "field": "workflow.order.total"}, context=event) == "yes"


def test_binary_output():
    scope = field_scope({**CONTACT, "data": {"plan": "pro"}}, {})
    assert evaluate_condition(
        {"field": "data.plan", "operator": "equals", "value": "pro"}, scope
    ) == {
        "field": "data.plan",
        "operator": "equals",
        "expectedValue": "pro",
        "actualValue": "pro",
        "result": True,
        "branch": "yes",
    }
    assert evaluate_condition({"field": "data.missing", "operator": "exists"}, scope) == {
        "field": "data.missing",
        "operator": "exists",
        "actualValue": None,
        "result": False,
        "branch": "no",
    }


MULTI = {
    "mode": "multi",
    "field": "data.plan",
    "branches": [
        {"id": "b-enterprise", "name": "Enterprise", "operator": "equals", "value": "enterprise"},
        {"id": "b-paid", "name": "Paid", "operator": "contains", "value": "pro"},
        {"id": "b-pro", "name": "Pro", "operator": "equals", "value": "pro"},
    ],
}


def test_multi_branch_takes_the_first_match():
    scope = field_scope({**CONTACT, "data": {"plan": "pro"}}, {})
    assert evaluate_condition(MULTI, scope) == {
        "field": "data.plan",
        "mode": "multi",
        "matchedBranch": "Paid",
        "actualValue": "pro",
        "branch": "b-paid",
    }


def test_multi_branch_falls_back_to_default():
    assert evaluate_condition(MULTI, field_scope({**CONTACT, "data": {"plan": "free"}}, {})) == {
        "field": "data.plan",
        "mode": "multi",
        "matchedBranch": "default",
        "actualValue": "free",
        "branch": "default",
    }
    missing = evaluate_condition(MULTI, field_scope({**CONTACT, "data": {}}, {}))
    assert missing == {
        "field": "data.plan",
        "mode": "multi",
        "matchedBranch": "default",
        "branch": "default",
    }


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"field": "data.x", "operator": "like", "value": 1},
            "config.operator: Invalid enum value",
        ),
        ({"operator": "equals"}, "config.field: Required"),
        ({"mode": "multi", "field": "data.x", "branches": []}, "config.branches: Array must"),
        ("yes", "config: Expected object, received string"),
    ],
)
def test_configs_that_cannot_be_evaluated_raise(config, message):
    with pytest.raises(ConditionError, match=re.escape(message)):
        evaluate_condition(config, field_scope(CONTACT, {}))


def test_an_unresolvable_stored_path_evaluates_as_missing():
    """Validation refuses it on write; a config stored before still evaluates, as Plunk does."""
    assert branch({"field": "contact.id", "operator": "exists"}) == "no"


# ---------------------------------------------------------------------------------------------
# validate_condition_config


def problems(config, path="config"):
    errors = FieldErrorList()
    validate_condition_config(errors, config, path)
    return errors


def test_valid_configs_have_no_problems():
    assert problems({"field": "data.plan", "operator": "equals", "value": "pro"}) == []
    assert problems({"field": "contact.email", "operator": "exists"}) == []
    assert problems({"field": "contact.data.a.b", "operator": "equals", "value": {"x": 1}}) == []
    assert problems(MULTI) == []


def test_problems_name_their_paths():
    assert problems(["x"], "steps.2.config") == [
        {
            "field": "steps.2.config",
            "message": "Expected object, received array",
            "code": "invalid_type",
            "received": "array",
        }
    ]
    assert problems({"field": "", "operator": "between"}) == [
        {
            "field": "config.field",
            "message": "String must contain at least 1 character(s)",
            "code": "too_small",
        },
        {
            "field": "config.operator",
            "message": "Invalid enum value. Expected 'equals' | 'notEquals' | 'contains' | "
            "'notContains' | 'greaterThan' | 'lessThan' | 'greaterThanOrEqual' | "
            "'lessThanOrEqual' | 'exists' | 'notExists', received 'between'",
            "code": "invalid_enum_value",
        },
    ]
    assert problems({}) == [
        {
            "field": "config.field",
            "message": "Required",
            "code": "invalid_type",
            "received": "undefined",
        },
        {
            "field": "config.operator",
            "message": "Required",
            "code": "invalid_type",
            "received": "undefined",
        },
    ]


@pytest.mark.parametrize("field", ["plan", "contact.id", "contact", "data", "data.", "events.x"])
def test_fields_that_never_resolve_are_refused(field):
    assert problems({"field": field, "operator": "exists"}) == [
        {
            "field": "config.field",
            "message": f'Field "{field}" never resolves: use contact.email, contact.subscribed, '
            "data.<key> (contact data), or event.<key> / workflow.<key> (data of the event "
            "that started the workflow)",
            "code": "custom",
        }
    ]


def test_multi_branch_problems():
    config = {
        "mode": "multi",
        "field": "data.plan",
        "branches": [
            {"id": "a", "name": "A", "operator": "equals", "value": 1},
            {"id": "a", "name": "", "operator": "equals"},
            {"id": "default", "name": "D", "operator": "nope"},
            "x",
        ],
    }
    assert [(e["field"], e["code"]) for e in problems(config)] == [
        ("config.branches.1.id", "custom"),
        ("config.branches.1.name", "too_small"),
        ("config.branches.2.id", "custom"),
        ("config.branches.2.operator", "invalid_enum_value"),
        ("config.branches.3", "invalid_type"),
    ]
    too_many = [{"id": f"b{i}", "name": "n", "operator": "exists"} for i in range(21)]
    assert problems({**config, "branches": too_many}) == [
        {
            "field": "config.branches",
            "message": "Array must contain at most 20 element(s)",
            "code": "too_big",
        }
    ]
    assert [e["field"] for e in problems({**config, "branches": None})] == ["config.branches"]
    assert problems({"mode": "single", "field": "data.plan"}) == [
        {
            "field": "config.mode",
            "message": 'Invalid literal value, expected "multi"',
            "code": "invalid_literal",
        }
    ]
