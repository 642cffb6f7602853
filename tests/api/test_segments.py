"""``/segments``: CRUD, the filter grammar with error paths, STATIC segments, the delete guard."""

from __future__ import annotations

import re
import uuid

import pytest

from plunk_events.models import Segment
from plunk_events.services.conditions import validate_condition

from .helpers import assert_error, assert_field_errors, assert_not_found, assert_secret_key_required

pytestmark = pytest.mark.django_db

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def cond(*filters, logic="AND", **group_extra):
    return {"logic": logic, "groups": [{"filters": list(filters), **group_extra}]}


def event_filter(name, operator="triggered", **extra):
    return {"field": f"event.{name}", "operator": operator, **extra}


PLAN_PRO = {"field": "data.plan", "operator": "equals", "value": "pro"}
OPERATORS = (
    "'equals' | 'notEquals' | 'contains' | 'notContains' | 'greaterThan' | 'lessThan' | "
    "'greaterThanOrEqual' | 'lessThanOrEqual' | 'exists' | 'notExists' | 'within' | 'olderThan' | "
    "'triggered' | 'triggeredWithin' | 'triggeredOlderThan' | 'notTriggered' | "
    "'notTriggeredWithin' | 'memberOfSegment' | 'notMemberOfSegment'"
)
CONDITION_REQUIRED = (
    "condition",
    "invalid_type",
    "Condition is required for DYNAMIC segments",
    "null",
)


def create(sk, **body):
    return sk.post("/segments", body, format="json")


# ---------------------------------------------------------------------------------------------
# CRUD


def test_create_returns_201_with_the_segment(sk, project):
    condition = cond(PLAN_PRO, event_filter("purchased", "triggeredWithin", value=30, unit="days"))
    response = create(
        sk, name="Pro Buyers!", description="Paying", condition=condition, trackMembership=True
    )
    assert response.status_code == 201
    body = response.json()
    segment = Segment.objects.get(project=project)
    assert body == {
        "id": str(segment.id),
        "name": "Pro Buyers!",
        "description": "Paying",
        "type": "DYNAMIC",
        "condition": condition,
        "trackMembership": True,
        "memberCount": 0,
        "projectId": str(project.id),
        "createdAt": body["createdAt"],
        "updatedAt": body["updatedAt"],
        "slug": "pro-buyers",
    }
    assert ISO_MS.match(body["createdAt"]) and ISO_MS.match(body["updatedAt"])
    assert segment.condition == condition


def test_defaults(sk):
    body = create(sk, name="Pros", condition=cond(PLAN_PRO)).json()
    assert body["type"] == "DYNAMIC"
    assert body["description"] is None
    assert body["trackMembership"] is False


def test_static_segment_ignores_the_condition(sk, project):
    body = create(sk, name="Beta", type="STATIC", condition={"logic": "nonsense"}).json()
    assert body["type"] == "STATIC"
    assert body["condition"] is None
    assert Segment.objects.get(project=project).condition is None
    assert create(sk, name="Beta 2", type="STATIC").status_code == 201


def test_list_is_a_bare_array_newest_first(sk, other_project, client_for):
    create(client_for(other_project.secret_key), name="Theirs", type="STATIC")
    for name in ("one", "two", "three"):
        create(sk, name=name, type="STATIC")
    body = sk.get("/segments").json()
    assert isinstance(body, list)
    assert [s["name"] for s in body] == ["three", "two", "one"]


def test_get_one(sk):
    created = create(sk, name="G", condition=cond(PLAN_PRO)).json()
    assert sk.get(f"/segments/{created['id']}").json() == created


def test_patch_updates_fields_and_keeps_the_rest(sk):
    created = create(sk, name="Old", condition=cond(PLAN_PRO)).json()
    new_condition = cond(event_filter("signup"), logic="OR")
    response = sk.patch(
        f"/segments/{created['id']}",
        {"name": "New Name", "condition": new_condition, "trackMembership": True},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "New Name"
    assert body["slug"] == "new-name"
    assert body["condition"] == new_condition
    assert body["trackMembership"] is True
    assert body["createdAt"] == created["createdAt"]
    renamed = sk.patch(f"/segments/{created['id']}", {"description": "d"}, format="json").json()
    assert renamed["condition"] == new_condition
    assert renamed["description"] == "d"


def test_patch_to_static_drops_the_condition_and_back_needs_one(sk):
    created = create(sk, name="S", condition=cond(PLAN_PRO)).json()
    url = f"/segments/{created['id']}"
    body = sk.patch(url, {"type": "STATIC"}, format="json").json()
    assert body["type"] == "STATIC" and body["condition"] is None
    assert_field_errors(sk.patch(url, {"type": "DYNAMIC"}, format="json"), [CONDITION_REQUIRED])
    body = sk.patch(url, {"type": "DYNAMIC", "condition": cond(PLAN_PRO)}, format="json").json()
    assert body["type"] == "DYNAMIC" and body["condition"] == cond(PLAN_PRO)


def test_patch_invalid_condition_changes_nothing(sk):
    created = create(sk, name="Keep", condition=cond(PLAN_PRO)).json()
    response = sk.patch(
        f"/segments/{created['id']}",
        {"name": "Changed", "condition": cond({"field": "data.x", "operator": "nope"})},
        format="json",
    )
    assert_field_errors(
        response,
        [
            (
                "condition.groups.0.filters.0.operator",
                "invalid_enum_value",
                f"Invalid enum value. Expected {OPERATORS}, received 'nope'",
            )
        ],
    )
    assert sk.get(f"/segments/{created['id']}").json() == created


def test_patch_null_condition_on_a_dynamic_segment_is_422(sk):
    created = create(sk, name="N", condition=cond(PLAN_PRO)).json()
    response = sk.patch(f"/segments/{created['id']}", {"condition": None}, format="json")
    assert_field_errors(response, [CONDITION_REQUIRED])


def test_delete(sk, project):
    created = create(sk, name="D", type="STATIC").json()
    response = sk.delete(f"/segments/{created['id']}")
    assert response.status_code == 204
    assert not Segment.objects.filter(project=project).exists()
    assert_not_found(sk.delete(f"/segments/{created['id']}"), "Segment", created["id"])


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_projects_segment_is_404(method, sk, other_project, client_for):
    other = client_for(other_project.secret_key)
    theirs = create(other, name="Theirs", condition=cond(PLAN_PRO)).json()
    response = getattr(sk, method)(f"/segments/{theirs['id']}", {"name": "x"}, format="json")
    assert_not_found(response, "Segment", theirs["id"])
    assert other.get(f"/segments/{theirs['id']}").json()["name"] == "Theirs"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("bad_id", ["nope", "seg_1", str(uuid.UUID(int=7))])
def test_non_uuid_or_unknown_id_is_404(method, bad_id, sk):
    response = getattr(sk, method)(f"/segments/{bad_id}", {}, format="json")
    assert_not_found(response, "Segment", bad_id)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "/{id}"), ("patch", "/{id}"), ("delete", "/{id}")],
)
def test_public_key_is_refused(method, path, sk, pk, project):
    created = create(sk, name="K", type="STATIC").json()
    url = "/segments" + path.format(id=created["id"])
    assert_secret_key_required(getattr(pk, method)(url, {"name": "x"}, format="json"))
    assert Segment.objects.get(project=project).name == "K"


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"condition": cond(PLAN_PRO)}, [("name", "invalid_type", "Required")]),
        ({"name": "", "condition": cond(PLAN_PRO)}, [("name", "too_small", "This field may not be blank.")]),
        ({"name": "x" * 101, "condition": cond(PLAN_PRO)}, [("name", "too_big", "Ensure this field has no more than 100 characters.")]),
        ({"name": 5, "condition": cond(PLAN_PRO)}, [("name", "invalid_type", "Not a valid string.")]),
        ({"name": "n", "description": "d" * 501, "condition": cond(PLAN_PRO)}, [("description", "too_big", "Ensure this field has no more than 500 characters.")]),
        ({"name": "n", "type": "SMART", "condition": cond(PLAN_PRO)}, [("type", "invalid_enum_value", '"SMART" is not a valid choice.')]),
        ({"name": "n", "trackMembership": "yes", "condition": cond(PLAN_PRO)}, [("trackMembership", "invalid_type", "Must be a valid boolean.")]),
        ({"name": "n"}, [("condition", "invalid_type", "Condition is required for DYNAMIC segments", "null")]),
        ({"name": "n", "condition": None}, [("condition", "invalid_type", "Condition is required for DYNAMIC segments", "null")]),
        ({"name": "n", "condition": "all"}, [("condition", "invalid_type", "Expected object, received string", "string")]),
        ({"name": "n", "condition": {"groups": [{"filters": [PLAN_PRO]}]}}, [("condition.logic", "invalid_type", "Required", "undefined")]),
        ({"name": "n", "condition": {"logic": "XOR", "groups": [{"filters": [PLAN_PRO]}]}}, [("condition.logic", "invalid_enum_value", "Invalid enum value. Expected 'AND' | 'OR', received 'XOR'")]),
        ({"name": "n", "condition": {"logic": "AND", "groups": []}}, [("condition.groups", "too_small", "Array must contain at least 1 element(s)")]),
        ({"name": "n", "condition": {"logic": "AND"}}, [("condition.groups", "invalid_type", "Required", "undefined")]),
        ({"name": "n", "condition": {"logic": "AND", "groups": [{}]}}, [("condition.groups.0.filters", "invalid_type", "Required", "undefined")]),
        ({"name": "n", "condition": {"logic": "AND", "groups": [{"filters": []}]}}, [("condition.groups.0.filters", "too_small", "A group needs at least one filter or a nested condition")]),
        ({"name": "n", "condition": cond("data.plan")}, [("condition.groups.0.filters.0", "invalid_type", "Expected object, received string", "string")]),
    ],
)  # fmt: skip
def test_create_validation_errors(sk, project, body, errors):
    assert_field_errors(create(sk, **body), errors)
    assert not Segment.objects.filter(project=project).exists()


@pytest.mark.parametrize(
    ("flt", "errors"),
    [
        ({"operator": "exists"}, [("field", "invalid_type", "Required", "undefined")]),
        ({"field": "purchase", "operator": "triggered"}, [("field", "custom", "Unsupported filter field: purchase")]),
        ({"field": "event.", "operator": "triggered"}, [("field", "custom", "Unsupported filter field: event.")]),
        ({"field": "data.", "operator": "exists"}, [("field", "custom", "Unsupported filter field: data.")]),
        ({"field": "email.teleported", "operator": "triggered"}, [("field", "custom", "Unsupported filter field: email.teleported")]),
        ({"field": "data.plan"}, [("operator", "invalid_type", "Required", "undefined")]),
        ({"field": "data.plan", "operator": "like", "value": "x"}, [("operator", "invalid_enum_value", f"Invalid enum value. Expected {OPERATORS}, received 'like'")]),
        ({"field": "data.plan", "operator": "equals"}, [("value", "invalid_type", "Required", "undefined")]),
        ({"field": "data.plan", "operator": "contains", "value": 3}, [("value", "invalid_type", "Expected string, received number", "number")]),
        ({"field": "event.buy", "operator": "equals", "value": 1}, [("operator", "custom", 'Operator "equals" cannot be used with field "event.buy"')]),
        ({"field": "data.plan", "operator": "triggered"}, [("operator", "custom", 'Operator "triggered" cannot be used with field "data.plan"')]),
        ({"field": "email", "operator": "memberOfSegment"}, [("operator", "custom", 'Operator "memberOfSegment" cannot be used with field "email"')]),
        ({"field": "event.buy", "operator": "triggeredWithin", "unit": "days"}, [("value", "invalid_type", "Required", "undefined")]),
        ({"field": "event.buy", "operator": "triggeredWithin", "value": "7", "unit": "days"}, [("value", "invalid_type", "Expected number, received string", "string")]),
        ({"field": "event.buy", "operator": "triggeredWithin", "value": 0, "unit": "days"}, [("value", "too_small", "Number must be greater than 0")]),
        ({"field": "event.buy", "operator": "notTriggeredWithin", "value": 3}, [("unit", "invalid_type", "Required", "undefined")]),
        ({"field": "createdAt", "operator": "within", "value": 3, "unit": "weeks"}, [("unit", "invalid_enum_value", "Invalid enum value. Expected 'days' | 'hours' | 'minutes', received 'weeks'")]),
    ],
)  # fmt: skip
def test_filter_errors_name_the_offending_path(sk, flt, errors):
    response = create(sk, name="n", condition=cond(PLAN_PRO, flt))
    prefix = "condition.groups.0.filters.1."
    assert_field_errors(response, [(prefix + field, *rest) for field, *rest in errors])


@pytest.mark.parametrize(
    "flt",
    [
        {"field": "email", "operator": "contains", "value": "@acme"},
        {"field": "subscribed", "operator": "equals", "value": True},
        {"field": "createdAt", "operator": "olderThan", "value": 2, "unit": "hours"},
        {"field": "updatedAt", "operator": "within", "value": 1.5, "unit": "minutes"},
        {"field": "data.address.city", "operator": "exists"},
        {"field": "data.age", "operator": "greaterThanOrEqual", "value": 18},
        {"field": "event.Signed Up/v2", "operator": "notTriggered"},
        {"field": "event.buy", "operator": "triggeredOlderThan", "value": 30, "unit": "days"},
        {"field": "email.opened", "operator": "triggeredWithin", "value": 14, "unit": "days"},
        {"field": "email.click", "operator": "notTriggered"},
        {"field": "segment.<id>", "operator": "notMemberOfSegment"},
    ],
)
def test_every_namespace_and_operator_family_is_accepted(sk, flt):
    if flt["field"] == "segment.<id>":  # a reference must name a segment of the project
        target = create(sk, name="target", type="STATIC").json()
        flt = {**flt, "field": f"segment.{target['id']}"}
    response = create(sk, name="ok", condition=cond(flt))
    assert response.status_code == 201, response.content
    assert response.json()["condition"] == cond(flt)


def test_nested_condition_errors_carry_the_full_path(sk):
    condition = {
        "logic": "OR",
        "groups": [
            {"filters": [PLAN_PRO]},
            {
                "filters": [],
                "conditions": {
                    "logic": "AND",
                    "groups": [
                        {"filters": [PLAN_PRO, {"field": "event.x", "operator": "sometimes"}]},
                        {"filters": [], "conditions": {"logic": "NOR", "groups": []}},
                    ],
                },
            },
        ],
    }
    nested = "condition.groups.1.conditions.groups"
    assert_field_errors(
        create(sk, name="nested", condition=condition),
        [
            (
                f"{nested}.0.filters.1.operator",
                "invalid_enum_value",
                f"Invalid enum value. Expected {OPERATORS}, received 'sometimes'",
            ),
            (
                f"{nested}.1.conditions.logic",
                "invalid_enum_value",
                "Invalid enum value. Expected 'AND' | 'OR', received 'NOR'",
            ),
            (
                f"{nested}.1.conditions.groups",
                "too_small",
                "Array must contain at least 1 element(s)",
            ),
        ],
    )


def test_nesting_is_capped():
    condition = cond(PLAN_PRO)
    for _ in range(12):
        condition = {"logic": "AND", "groups": [{"filters": [], "conditions": condition}]}
    errors = validate_condition(condition)
    assert [e["code"] for e in errors] == ["too_big"]
    assert errors[0]["field"] == "condition" + ".groups.0.conditions" * 10


def test_validate_condition_is_pure_and_reports_everything():
    assert validate_condition(cond(PLAN_PRO)) == []
    errors = validate_condition({"logic": 1, "groups": [{"filters": [{}]}]}, field="c")
    assert errors == [
        {"field": "c.logic", "message": "Expected string, received number", "code": "invalid_type", "received": "number"},
        {"field": "c.groups.0.filters.0.field", "message": "Required", "code": "invalid_type", "received": "undefined"},
        {"field": "c.groups.0.filters.0.operator", "message": "Required", "code": "invalid_type", "received": "undefined"},
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The delete guard of DELETE /events/<name>


def track(sk, event):
    response = sk.post("/v1/track", {"email": "g@example.com", "event": event}, format="json")
    assert response.status_code == 200


def test_a_segment_referencing_an_event_blocks_its_deletion_until_deleted(sk):
    track(sk, "order.paid")
    condition = {
        "logic": "AND",
        "groups": [
            {
                "filters": [PLAN_PRO],
                "conditions": {
                    "logic": "OR",
                    "groups": [{"filters": [event_filter("order.paid", "triggered")]}],
                },
            }
        ],
    }
    segment = create(sk, name="Paid", condition=condition).json()

    response = sk.delete("/events/order.paid")
    assert_error(
        response,
        400,
        "CONFLICT",
        "Cannot delete event: used in 1 segment(s) and 0 workflow(s)",
        details={"usedInSegments": [{"id": segment["id"], "name": "Paid"}], "usedInWorkflows": []},
    )
    assert sk.get("/events", {"eventName": "order.paid"}).json()["events"] != []

    assert sk.delete(f"/segments/{segment['id']}").status_code == 204
    response = sk.delete("/events/order.paid")
    assert response.status_code == 200
    assert response.json() == {"deletedCount": 1}


def test_patching_the_reference_away_unblocks_deletion(sk):
    track(sk, "legacy")
    segment = create(sk, name="L", condition=cond(event_filter("legacy"))).json()
    assert sk.delete("/events/legacy").status_code == 400
    sk.patch(f"/segments/{segment['id']}", {"condition": cond(PLAN_PRO)}, format="json")
    assert sk.delete("/events/legacy").json() == {"deletedCount": 1}


def test_a_static_segment_references_nothing(sk):
    track(sk, "gone")
    create(sk, name="Static", type="STATIC", condition=cond(event_filter("gone")))
    assert sk.delete("/events/gone").json() == {"deletedCount": 1}


def test_another_projects_segment_does_not_block(sk, other_project, client_for):
    track(sk, "shared")
    create(client_for(other_project.secret_key), name="T", condition=cond(event_filter("shared")))
    assert sk.delete("/events/shared").json() == {"deletedCount": 1}
