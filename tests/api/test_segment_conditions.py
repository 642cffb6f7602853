"""``POST``/``PATCH /segments``: the count extension's validation, per-field operators, dates,
``segment.<id>`` references (same project, no self-reference, no cycle) and the live
``memberCount``."""

from __future__ import annotations

import uuid

import pytest

from plunk_events.models import Segment

from .helpers import assert_field_errors

pytestmark = pytest.mark.django_db

PATH = "condition.groups.0.filters.0."


def cond(*filters):
    return {"logic": "AND", "groups": [{"filters": list(filters)}]}


def create(sk, condition, name="s", **body):
    return sk.post("/segments", {"name": name, "condition": condition, **body}, format="json")


def patch(sk, segment_id, **body):
    return sk.patch(f"/segments/{segment_id}", body, format="json")


def member_of(segment_id, operator="memberOfSegment"):
    return {"field": f"segment.{segment_id}", "operator": operator}


# ---------------------------------------------------------------------------------------------
# The count extension


@pytest.mark.parametrize(
    "flt",
    [
        {"field": "event.purchase", "operator": "triggeredAtLeast", "value": 3, "window": {"amount": 30, "unit": "days"}},
        {"field": "event.purchase", "operator": "triggeredAtMost", "value": 0},
        {"field": "event.purchase", "operator": "triggeredAtMost", "value": 2.0, "window": None},
        {"field": "event.login", "operator": "triggeredAtLeast", "value": 1, "window": {"amount": 1.5, "unit": "hours"}},
    ],
)  # fmt: skip
def test_count_operators_are_accepted(sk, flt):
    response = create(sk, cond(flt))
    assert response.status_code == 201, response.content
    assert response.json()["condition"] == cond(flt)


AT_LEAST = {"field": "event.purchase", "operator": "triggeredAtLeast"}


@pytest.mark.parametrize(
    ("flt", "errors"),
    [
        (AT_LEAST, [("value", "invalid_type", "Required", "undefined")]),
        ({**AT_LEAST, "value": "3"}, [("value", "invalid_type", "Expected integer, received string", "string")]),
        ({**AT_LEAST, "value": 2.5}, [("value", "invalid_type", "Expected integer, received number", "number")]),
        ({**AT_LEAST, "value": True}, [("value", "invalid_type", "Expected integer, received boolean", "boolean")]),
        ({**AT_LEAST, "value": -1}, [("value", "too_small", "Number must be greater than or equal to 0")]),
        ({**AT_LEAST, "value": 10**9 + 1}, [("value", "too_big", "Number must be less than or equal to 1000000000")]),
        ({**AT_LEAST, "value": 1, "window": "30d"}, [("window", "invalid_type", "Expected object, received string", "string")]),
        ({**AT_LEAST, "value": 1, "window": {}}, [("window.amount", "invalid_type", "Required", "undefined"), ("window.unit", "invalid_type", "Required", "undefined")]),
        ({**AT_LEAST, "value": 1, "window": {"amount": 0, "unit": "days"}}, [("window.amount", "too_small", "Number must be greater than 0")]),
        ({**AT_LEAST, "value": 1, "window": {"amount": "7", "unit": "days"}}, [("window.amount", "invalid_type", "Expected number, received string", "string")]),
        ({**AT_LEAST, "value": 1, "window": {"amount": 7, "unit": "weeks"}}, [("window.unit", "invalid_enum_value", "Invalid enum value. Expected 'days' | 'hours' | 'minutes', received 'weeks'")]),
        ({"field": "email.open", "operator": "triggeredAtLeast", "value": 1}, [("operator", "custom", 'Operator "triggeredAtLeast" cannot be used with field "email.open"')]),
        ({"field": "data.orders", "operator": "triggeredAtMost", "value": 1}, [("operator", "custom", 'Operator "triggeredAtMost" cannot be used with field "data.orders"')]),
    ],
)  # fmt: skip
def test_count_operator_errors_name_the_path(sk, project, flt, errors):
    response = create(sk, cond(flt))
    assert_field_errors(response, [(PATH + field, *rest) for field, *rest in errors])
    assert not Segment.objects.filter(project=project).exists()


# ---------------------------------------------------------------------------------------------
# Operators and values per contact field


@pytest.mark.parametrize(
    ("flt", "errors"),
    [
        ({"field": "email", "operator": "exists"}, [("operator", "custom", 'Operator "exists" cannot be used with field "email"')]),
        ({"field": "email", "operator": "greaterThan", "value": "a"}, [("operator", "custom", 'Operator "greaterThan" cannot be used with field "email"')]),
        ({"field": "subscribed", "operator": "contains", "value": "t"}, [("operator", "custom", 'Operator "contains" cannot be used with field "subscribed"')]),
        ({"field": "subscribed", "operator": "within", "value": 1, "unit": "days"}, [("operator", "custom", 'Operator "within" cannot be used with field "subscribed"')]),
        ({"field": "createdAt", "operator": "notExists"}, [("operator", "custom", 'Operator "notExists" cannot be used with field "createdAt"')]),
        ({"field": "updatedAt", "operator": "contains", "value": "2024"}, [("operator", "custom", 'Operator "contains" cannot be used with field "updatedAt"')]),
        ({"field": "createdAt", "operator": "equals", "value": "yesterday"}, [("value", "invalid_date", "Invalid date")]),
        ({"field": "updatedAt", "operator": "greaterThan", "value": True}, [("value", "invalid_date", "Invalid date")]),
        ({"field": "createdAt", "operator": "lessThan", "value": "2024-02-30"}, [("value", "invalid_date", "Invalid date")]),
        ({"field": "data.tags", "operator": "equals", "value": ["a"]}, [("value", "invalid_type", "Expected string, number or boolean, received array", "array")]),
        ({"field": "data.address", "operator": "notEquals", "value": {"city": "Oslo"}}, [("value", "invalid_type", "Expected string, number or boolean, received object", "object")]),
    ],
)  # fmt: skip
def test_field_specific_errors(sk, flt, errors):
    response = create(sk, cond(flt))
    assert_field_errors(response, [(PATH + field, *rest) for field, *rest in errors])


@pytest.mark.parametrize(
    "flt",
    [
        {"field": "createdAt", "operator": "equals", "value": "2024-01-15"},
        {"field": "createdAt", "operator": "greaterThan", "value": "2024-01-15T10:30:00.000Z"},
        {"field": "updatedAt", "operator": "lessThanOrEqual", "value": 1705314600000},
        {"field": "data.score", "operator": "lessThan", "value": 2.5},
        {"field": "data.name", "operator": "greaterThanOrEqual", "value": "m"},
        {"field": "data.vip", "operator": "notEquals", "value": True},
        {"field": "data.seen", "operator": "olderThan", "value": 3, "unit": "days"},
        {"field": "email", "operator": "notEquals", "value": 42},
        {"field": "subscribed", "operator": "notEquals", "value": "true"},
    ],
)
def test_values_each_field_accepts(sk, flt):
    assert create(sk, cond(flt)).status_code == 201


# ---------------------------------------------------------------------------------------------
# segment.<id> references


def test_references_to_segments_of_the_project_are_accepted(sk):
    static = create(sk, None, name="static", type="STATIC").json()
    dynamic = create(sk, cond({"field": "data.plan", "operator": "exists"}), name="d").json()
    condition = cond(member_of(static["id"]), member_of(dynamic["id"], "notMemberOfSegment"))
    response = create(sk, condition, name="both")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("ref", [str(uuid.UUID(int=7)), "nope", ""])
def test_an_unknown_segment_is_422(sk, project, ref):
    response = create(sk, cond(member_of(ref)))
    if ref == "":  # "segment." is no field at all
        errors = [("field", "custom", "Unsupported filter field: segment.")]
    else:
        errors = [("field", "custom", f"Referenced segment not found: {ref}")]
    assert_field_errors(response, [(PATH + field, *rest) for field, *rest in errors])
    assert not Segment.objects.filter(project=project).exists()


def test_another_projects_segment_is_not_found(sk, other_project, client_for):
    theirs = create(client_for(other_project.secret_key), None, name="t", type="STATIC").json()
    response = create(sk, cond(member_of(theirs["id"])))
    message = f"Referenced segment not found: {theirs['id']}"
    assert_field_errors(response, [(PATH + "field", "custom", message)])


def test_a_segment_cannot_reference_itself(sk):
    segment = create(sk, cond({"field": "data.plan", "operator": "exists"})).json()
    response = patch(sk, segment["id"], condition=cond(member_of(segment["id"])))
    assert_field_errors(response, [(PATH + "field", "custom", "A segment cannot reference itself")])


def test_a_cycle_through_other_segments_is_422_and_changes_nothing(sk):
    a = create(sk, cond({"field": "data.plan", "operator": "exists"}), name="a").json()
    b = create(sk, cond(member_of(a["id"])), name="b").json()
    c = create(sk, cond(member_of(b["id"], "notMemberOfSegment")), name="c").json()
    nested = {
        "logic": "OR",
        "groups": [
            {"filters": [{"field": "email", "operator": "contains", "value": "@"}]},
            {"filters": [], "conditions": cond(member_of(c["id"]))},
        ],
    }
    response = patch(sk, a["id"], name="renamed", condition=nested)
    assert_field_errors(
        response,
        [
            (
                "condition.groups.1.conditions.groups.0.filters.0.field",
                "custom",
                "Circular segment reference detected",
            )
        ],
    )
    assert sk.get(f"/segments/{a['id']}").json() == a


def test_errors_of_several_references_are_reported_together(sk):
    segment = create(sk, cond({"field": "data.plan", "operator": "exists"})).json()
    missing = str(uuid.uuid4())
    response = patch(
        sk, segment["id"], condition=cond(member_of(missing), member_of(segment["id"]))
    )
    assert_field_errors(
        response,
        [
            (PATH + "field", "custom", f"Referenced segment not found: {missing}"),
            (
                "condition.groups.0.filters.1.field",
                "custom",
                "A segment cannot reference itself",
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# memberCount, and the delete guard of the count operators


def track(sk, email, event="signup", **data):
    body = {"email": email, "event": event, **({"data": data} if data else {})}
    assert sk.post("/v1/track", body, format="json").status_code == 200


def test_member_count_is_live_on_create_and_condition_change(sk):
    track(sk, "a@example.com", plan="pro")
    track(sk, "b@example.com", plan="pro")
    track(sk, "c@example.com", plan="free")
    pro = cond({"field": "data.plan", "operator": "equals", "value": "pro"})
    created = create(sk, pro).json()
    assert created["memberCount"] == 2
    track(sk, "d@example.com", plan="pro")
    assert patch(sk, created["id"], name="renamed").json()["memberCount"] == 2  # not recounted
    free = cond({"field": "data.plan", "operator": "equals", "value": "free"})
    assert patch(sk, created["id"], condition=free).json()["memberCount"] == 1
    assert patch(sk, created["id"], condition=pro).json()["memberCount"] == 3
    assert create(sk, None, name="static", type="STATIC").json()["memberCount"] == 0


def test_member_count_counts_events(sk):
    for _ in range(3):
        track(sk, "buyer@example.com", "purchase")
    track(sk, "once@example.com", "purchase")
    flt = {"field": "event.purchase", "operator": "triggeredAtLeast", "value": 2}
    assert create(sk, cond(flt)).json()["memberCount"] == 1
    window = {"amount": 1, "unit": "hours"}
    flt = {"field": "event.purchase", "operator": "triggeredAtMost", "value": 1, "window": window}
    assert create(sk, cond(flt)).json()["memberCount"] == 1


def test_a_count_filter_blocks_deleting_its_event(sk):
    track(sk, "buyer@example.com", "order.paid")
    flt = {"field": "event.order.paid", "operator": "triggeredAtMost", "value": 5}
    segment = create(sk, cond(flt)).json()
    response = sk.delete("/events/order.paid")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["usedInSegments"] == [
        {"id": segment["id"], "name": "s"}
    ]
