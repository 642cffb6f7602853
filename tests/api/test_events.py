"""The ``/events`` family (with issue 4's keyset extension): list, names, stats (exact before
and after the rollup), contact events, usage, guarded delete, odd names in URLs, unknown routes
and methods, and project isolation."""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from django.db.models import Count
from django.test import override_settings

from plunk_events.models import Contact, Event, EventDailyCount, Segment, Workflow, WorkflowStep
from plunk_events.services import rollups

from .helpers import TIMESTAMP, VALIDATION_SUGGESTION, assert_error, assert_validation, track

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def day(n: int) -> datetime:
    """Midnight UTC ``n`` days ago."""
    return TODAY - timedelta(days=n)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def add_events(project, *specs, contact=None) -> list[Event]:
    """Insert events with chosen timestamps: specs are ``(name, created_at)`` pairs."""
    rows = [Event(project=project, contact=contact, name=n, created_at=at) for n, at in specs]
    return Event.objects.bulk_create(rows)


def new_contact(project, email="c@example.com") -> Contact:
    return Contact.objects.create(project=project, email=email)


def url(name: str) -> str:
    return "/events/" + quote(name, safe="")


# ---------------------------------------------------------------------------------------------
# GET /events


def test_list_is_newest_first_with_system_events_and_the_exact_shape(pk, sk, project):
    track(pk, {"email": "A@example.com", "event": "first", "data": {"plan": "pro"}})
    track(pk, {"email": "a@example.com", "event": "second", "subscribed": False})
    body = sk.get("/events").json()
    assert set(body) == {"events", "cursor", "hasMore"}
    assert (body["cursor"], body["hasMore"]) == (None, False)
    events = body["events"]
    assert [e["name"] for e in events] == ["second", "contact.unsubscribed", "first"]
    contact = Contact.objects.get()
    first = Event.objects.get(name="first")
    assert events[2] == {
        "id": str(first.id),
        "name": "first",
        "contactId": str(contact.id),
        "emailId": None,
        "data": {"plan": "pro"},
        "createdAt": iso(first.created_at),
        "contact": {"email": "a@example.com"},
    }
    assert all(TIMESTAMP.match(e["createdAt"]) for e in events)


def test_event_without_contact_has_null_contact(sk, project):
    email_id = uuid.uuid4()
    Event.objects.create(project=project, name="orphan", data={"x": 1}, email_id=email_id)
    (event,) = sk.get("/events").json()["events"]
    assert event["contactId"] is None
    assert event["contact"] is None
    assert event["emailId"] == str(email_id)
    assert event["data"] == {"x": 1}


def test_event_name_filter_is_exact(sk, project):
    add_events(
        project,
        ("purchased", day(1)),
        ("Purchased", day(1)),
        ("purchased.x", day(1)),
        ("purchased", day(2)),
    )
    events = sk.get("/events", {"eventName": "purchased"}).json()["events"]
    assert [e["name"] for e in events] == ["purchased", "purchased"]
    assert events[0]["createdAt"] > events[1]["createdAt"]
    assert sk.get("/events", {"eventName": "nope"}).json()["events"] == []
    assert len(sk.get("/events", {"eventName": ""}).json()["events"]) == 4


# As in Plunk (``parseInt(limit) || default``), and documented so in the OpenAPI schema.
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "", "1.5e3", "None", "null", "1.5"])
def test_bad_limit_gives_the_default_of_100(sk, project, limit):
    add_events(project, *[("e", NOW - timedelta(seconds=i)) for i in range(105)])
    body = sk.get("/events", {"limit": limit}).json()
    assert len(body["events"]) == 100
    assert body["hasMore"] is True


def test_limit_is_honoured(sk, project):
    add_events(project, *[("e", NOW - timedelta(seconds=i)) for i in range(5)])
    assert len(sk.get("/events", {"limit": "2"}).json()["events"]) == 2
    assert len(sk.get("/events", {"limit": "5"}).json()["events"]) == 5
    assert sk.get("/events", {"limit": "5"}).json()["hasMore"] is False


@override_settings(PLUNK_EVENTS={"EVENTS_MAX_LIMIT": 4})
def test_limit_is_capped(sk, project):
    contact = new_contact(project)
    add_events(project, *[("e", NOW - timedelta(seconds=i)) for i in range(6)], contact=contact)
    for path in ("/events", f"/events/contact/{contact.id}"):
        assert len(sk.get(path, {"limit": "5000"}).json()["events"]) == 4
        assert len(sk.get(path).json()["events"]) == 4  # the default is capped too
        assert len(sk.get(path, {"limit": "3"}).json()["events"]) == 3


def test_default_cap_is_1000(sk, project):
    add_events(project, *[("e", NOW - timedelta(milliseconds=i)) for i in range(1001)])
    body = sk.get("/events", {"limit": "5000"}).json()
    assert (len(body["events"]), body["hasMore"]) == (1000, True)


def all_pages(client, path, params=None, limit=3) -> list[dict]:
    params = dict(params or {}, limit=limit)
    seen, cursor = [], None
    for _ in range(50):
        body = client.get(path, {**params, **({"cursor": cursor} if cursor else {})}).json()
        assert len(body["events"]) <= limit
        seen += body["events"]
        if not body["hasMore"]:
            assert body["cursor"] is None
            return seen
        assert len(body["events"]) == limit
        cursor = body["cursor"]
    raise AssertionError("pagination did not end")


def test_keyset_pagination_with_equal_timestamps(sk, project):
    same = NOW - timedelta(minutes=5)
    rows = add_events(
        project,
        *[("tie", same) for _ in range(7)],
        ("later", same + timedelta(microseconds=1)),
        ("earlier", same - timedelta(microseconds=1)),
        ("old", day(3)),
    )
    expected = [
        str(e.id) for e in sorted(rows, key=lambda e: (e.created_at, e.id.int), reverse=True)
    ]
    for limit in (1, 2, 3, 7, 10):
        assert [e["id"] for e in all_pages(sk, "/events", limit=limit)] == expected
    ties = all_pages(sk, "/events", {"eventName": "tie"}, limit=2)
    assert [e["id"] for e in ties] == [i for i in expected if i in {str(r.id) for r in rows[:7]}]


def test_keyset_pagination_of_contact_events(sk, project):
    contact = new_contact(project)
    same = NOW - timedelta(minutes=1)
    rows = add_events(project, *[("x", same) for _ in range(5)], ("y", day(1)), contact=contact)
    add_events(project, ("other", same))  # no contact: never listed
    expected = [
        str(e.id) for e in sorted(rows, key=lambda e: (e.created_at, e.id.int), reverse=True)
    ]
    listed = all_pages(sk, f"/events/contact/{contact.id}", limit=2)
    assert [e["id"] for e in listed] == expected


def test_first_page_has_a_cursor_only_when_more_remain(sk, project):
    add_events(project, ("a", day(1)), ("b", day(2)))
    body = sk.get("/events", {"limit": "1"}).json()
    assert body["hasMore"] is True
    assert isinstance(body["cursor"], str)
    body = sk.get("/events", {"limit": "1", "cursor": body["cursor"]}).json()
    assert [e["name"] for e in body["events"]] == ["b"]
    assert (body["cursor"], body["hasMore"]) == (None, False)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "abc",
        "!!!",
        b64("2024-01-01T00:00:00+00:00"),
        b64("2024-01-01T00:00:00|not-a-uuid"),
        b64(f"2024-01-01T00:00:00|{uuid.UUID(int=1)}"),  # naive datetime
        b64(f"yesterday|{uuid.UUID(int=1)}"),
        b64(f"2024-01-01T00:00:00+00:00|{uuid.UUID(int=1)}|x"),
    ],
)
@pytest.mark.parametrize("path", ["/events", f"/events/contact/{uuid.UUID(int=5)}"])
def test_invalid_cursor_is_422(sk, project, cursor, path):
    response = sk.get(path, {"cursor": cursor})
    assert_validation(
        response,
        [{"field": "cursor", "message": "Invalid cursor", "code": "invalid_string"}],
        suggestion=VALIDATION_SUGGESTION,
    )


# ---------------------------------------------------------------------------------------------
# GET /events/names


def test_names_by_count_then_name(pk, sk, project):
    add_events(
        project,
        *[("b", day(1))] * 3,
        *[("a", day(2))] * 3,
        *[("email.sent", day(3))] * 5,
        ("z", day(1)),
        ("c", day(1)),
    )
    track(pk, {"email": "x@example.com", "event": "c"})
    assert sk.get("/events/names").json() == {"eventNames": ["email.sent", "a", "b", "c", "z"]}


def test_names_of_an_empty_project(sk):
    assert sk.get("/events/names").json() == {"eventNames": []}


# ---------------------------------------------------------------------------------------------
# GET /events/stats and names: exact for every window, before and after the rollup

SEEDED = [
    ("a", day(10)),
    ("a", day(10) + timedelta(hours=12)),
    ("a", day(5) + timedelta(hours=23, minutes=59, seconds=59, milliseconds=999)),
    ("a", day(2)),
    ("b", day(5) + timedelta(hours=8)),
    ("b", day(5) + timedelta(hours=8)),
    ("b", day(3) + timedelta(hours=6)),
    ("b", day(3) + timedelta(hours=6)),
    ("c.d", day(1) + timedelta(microseconds=1)),
    ("contact.subscribed", day(4)),
    ("e f", day(5)),
    ("e f", day(6) - timedelta(microseconds=1)),
]

PLUS_TWO = timezone(timedelta(hours=2))

#: (query, reference window (start, end) both inclusive)
WINDOWS = [
    ({}, (None, None)),
    ({"startDate": day(5).date().isoformat()}, (day(5), None)),
    ({"endDate": day(5).date().isoformat()}, (None, day(4) - timedelta(microseconds=1))),
    (
        {"startDate": day(5).date().isoformat(), "endDate": day(5).date().isoformat()},
        (day(5), day(4) - timedelta(microseconds=1)),
    ),
    (
        {"startDate": iso(day(10) + timedelta(hours=12)), "endDate": iso(day(2))},
        (day(10) + timedelta(hours=12), day(2)),
    ),
    (
        {"startDate": iso(day(10) + timedelta(hours=12, milliseconds=1))},
        (day(10) + timedelta(hours=12, milliseconds=1), None),
    ),
    ({"endDate": iso(day(2))}, (None, day(2))),
    ({"endDate": day(3).date().isoformat()}, (None, day(2) - timedelta(microseconds=1))),
    (
        {
            "startDate": iso(day(5) + timedelta(hours=8)),
            "endDate": iso(day(5) + timedelta(hours=8)),
        },
        (day(5) + timedelta(hours=8), day(5) + timedelta(hours=8)),
    ),
    (
        {"startDate": day(5).astimezone(PLUS_TWO).isoformat()},  # 02:00+02:00
        (day(5), None),
    ),
    (
        {"startDate": (day(8) + timedelta(hours=3)).replace(tzinfo=None).isoformat()},  # naive: UTC
        (day(8) + timedelta(hours=3), None),
    ),
    ({"startDate": day(-1).date().isoformat()}, (day(-1), None)),
    (
        {"startDate": day(30).date().isoformat(), "endDate": day(20).date().isoformat()},
        (day(30), day(19) - timedelta(microseconds=1)),
    ),
    ({"startDate": "", "endDate": ""}, (None, None)),
]


def group_by(project, start=None, end=None) -> list[dict]:
    qs = Event.objects.filter(project=project)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lte=end)
    counts = Counter(dict(qs.values_list("name").annotate(n=Count("id")).order_by()))
    return [
        {"name": n, "count": c} for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def assert_exact(sk, project):
    for query, (start, end) in WINDOWS:
        assert sk.get("/events/stats", query).json() == group_by(project, start, end), query
    names = [row["name"] for row in group_by(project)]
    assert sk.get("/events/names").json() == {"eventNames": names}


def test_stats_windows_by_hand(sk, project):
    add_events(project, *SEEDED)
    with override_settings(PLUNK_EVENTS={"ROLLUP_LAG_SECONDS": 400 * 86400}):
        stats = sk.get("/events/stats", {"endDate": day(5).date().isoformat()}).json()
    # The whole of that day counts, up to 23:59:59.999.
    assert stats == [
        {"name": "a", "count": 3},
        {"name": "b", "count": 2},
        {"name": "e f", "count": 2},
    ]
    stats = sk.get("/events/stats", {"startDate": iso(day(3) + timedelta(hours=6))}).json()
    assert stats == [
        {"name": "b", "count": 2},
        {"name": "a", "count": 1},
        {"name": "c.d", "count": 1},
    ]
    stats = sk.get("/events/stats", {"endDate": iso(day(3) + timedelta(hours=6))}).json()
    assert {"name": "b", "count": 4} in stats  # a date-time end is inclusive
    assert sk.get("/events/stats", {"startDate": iso(NOW + timedelta(days=1))}).json() == []


def test_stats_and_names_are_exact_before_and_after_the_rollup(pk, sk, project, other_project):
    add_events(project, *SEEDED)
    add_events(other_project, *SEEDED[:5])
    # A lag longer than the data: the lazy rollup folds nothing, everything is counted raw.
    with override_settings(PLUNK_EVENTS={"ROLLUP_LAG_SECONDS": 400 * 86400}):
        assert_exact(sk, project)
    assert not EventDailyCount.objects.filter(project=project).exists()

    rollups.rollup(project)
    assert EventDailyCount.objects.filter(project=project).exists()
    assert_exact(sk, project)

    # An event tracked after the rollup counts the moment its track returns.
    track(pk, {"email": "x@example.com", "event": "a"})
    track(pk, {"email": "x@example.com", "event": "fresh"})
    assert_exact(sk, project)
    today = sk.get("/events/stats", {"startDate": TODAY.date().isoformat()}).json()
    assert {"name": "fresh", "count": 1} in today
    assert sk.get("/events/names").json()["eventNames"][0] == "a"

    # A delete after the rollup leaves the rollup exact as well.
    assert sk.delete("/events/b").json() == {"deletedCount": 4}
    assert "b" not in sk.get("/events/names").json()["eventNames"]
    assert_exact(sk, project)
    rollups.rollup(project)
    assert_exact(sk, project)


@pytest.mark.parametrize(
    ("query", "field", "value"),
    [
        ({"startDate": "abc"}, "startDate", "abc"),
        ({"endDate": "2024-13-01"}, "endDate", "2024-13-01"),
        ({"endDate": "2024-02-30"}, "endDate", "2024-02-30"),
        ({"startDate": "yesterday"}, "startDate", "yesterday"),
        ({"startDate": "1700000000"}, "startDate", "1700000000"),
    ],
)
def test_bad_date_is_422(sk, query, field, value):
    response = sk.get("/events/stats", query)
    assert_validation(
        response,
        [{"field": field, "message": f"Invalid date: {value!r}", "code": "invalid_date"}],
    )


def test_end_before_start_is_422(sk):
    response = sk.get("/events/stats", {"startDate": "2024-02-01", "endDate": "2024-01-31"})
    assert_validation(
        response,
        [
            {
                "field": "endDate",
                "message": "endDate must not be before startDate",
                "code": "invalid_date",
            }
        ],
    )


def test_same_date_start_and_end_is_one_day(sk, project):
    add_events(project, ("x", day(2)), ("x", day(1) - timedelta(microseconds=1)), ("x", day(1)))
    date = day(2).date().isoformat()
    assert sk.get("/events/stats", {"startDate": date, "endDate": date}).json() == [
        {"name": "x", "count": 2}
    ]


# ---------------------------------------------------------------------------------------------
# GET /events/contact/<id>


def test_contact_events_are_newest_first_without_contact_object(pk, sk, project):
    track(pk, {"email": "a@example.com", "event": "one"})
    track(pk, {"email": "a@example.com", "event": "two", "data": {"k": 1}})
    track(pk, {"email": "b@example.com", "event": "other"})
    contact = Contact.objects.get(email="a@example.com")
    body = sk.get(f"/events/contact/{contact.id}").json()
    assert (body["cursor"], body["hasMore"]) == (None, False)
    events = body["events"]
    assert [e["name"] for e in events] == ["two", "one"]
    two = Event.objects.get(name="two")
    assert events[0] == {
        "id": str(two.id),
        "name": "two",
        "contactId": str(contact.id),
        "emailId": None,
        "data": {"k": 1},
        "createdAt": iso(two.created_at),
    }


def test_contact_events_default_limit_is_50(sk, project):
    contact = new_contact(project)
    add_events(project, *[("e", NOW - timedelta(seconds=i)) for i in range(55)], contact=contact)
    body = sk.get(f"/events/contact/{contact.id}").json()
    assert len(body["events"]) == 50
    assert body["hasMore"] is True
    assert len(sk.get(f"/events/contact/{contact.id}", {"limit": "0"}).json()["events"]) == 50
    assert len(sk.get(f"/events/contact/{contact.id}", {"limit": "55"}).json()["events"]) == 55


@pytest.mark.parametrize(
    "contact_id",
    [str(uuid.UUID(int=7)), "abc", "not-a-uuid-at-all", "1", "%20", "clx_contact_xyz789"],
)
def test_unknown_or_malformed_contact_lists_nothing(sk, project, contact_id):
    add_events(project, ("x", day(1)), contact=new_contact(project))
    response = sk.get(f"/events/contact/{contact_id}")
    assert response.status_code == 200
    assert response.json() == {"events": [], "cursor": None, "hasMore": False}


def test_other_projects_contact_lists_nothing(sk, project, other_project):
    theirs = new_contact(other_project)
    add_events(other_project, ("x", day(1)), contact=theirs)
    assert sk.get(f"/events/contact/{theirs.id}").json()["events"] == []


# ---------------------------------------------------------------------------------------------
# GET /events/<name>/usage


def condition(*filters, nested=None):
    group = {"filters": list(filters)}
    if nested is not None:
        group["conditions"] = nested
    return {"logic": "AND", "groups": [group]}


def event_filter(name):
    return {"field": f"event.{name}", "operator": "triggered"}


def test_usage_counts_and_no_references(pk, sk, project):
    for email in ("a@example.com", "a@example.com", "b@example.com"):
        track(pk, {"email": email, "event": "purchased"})
    add_events(project, ("purchased", day(1)))  # without a contact
    assert sk.get("/events/purchased/usage").json() == {
        "usedInSegments": [],
        "usedInWorkflows": [],
        "totalCount": 4,
        "uniqueContacts": 2,
        "canDelete": True,
        "isSystemEvent": False,
    }


def test_usage_of_an_unknown_name(sk):
    assert sk.get("/events/never/usage").json() == {
        "usedInSegments": [],
        "usedInWorkflows": [],
        "totalCount": 0,
        "uniqueContacts": 0,
        "canDelete": True,
        "isSystemEvent": False,
    }


@pytest.mark.parametrize("name", ["email.open", "contact.subscribed", "segment.vip.entry"])
def test_usage_of_a_system_event(sk, project, name):
    add_events(project, (name, day(1)))
    body = sk.get(url(name) + "/usage").json()
    assert (body["totalCount"], body["canDelete"], body["isSystemEvent"]) == (1, False, True)


def make_references(project, name):
    """Every kind of reference to ``name``, plus near misses that must not count."""
    nested = Segment.objects.create(
        project=project,
        name="B nested",
        condition=condition(
            {"field": "data.plan", "operator": "equals", "value": "pro"},
            nested={
                "logic": "OR",
                "groups": [
                    {"filters": [{"field": "email.opened", "operator": "triggered"}]},
                    {
                        "filters": [],
                        "conditions": {
                            "logic": "AND",
                            "groups": [{"filters": [event_filter(name)]}],
                        },
                    },
                ],
            },
        ),
    )
    top = Segment.objects.create(
        project=project, name="A top", condition=condition(event_filter(name))
    )
    Segment.objects.create(
        project=project, name="miss", condition=condition(event_filter(name + "x"))
    )
    Segment.objects.create(project=project, name="static", type="STATIC", condition=None)
    Segment.objects.create(
        project=project,
        name="bare",
        condition=condition({"field": name, "operator": "triggered"}),  # no event. prefix
    )
    trigger = Workflow.objects.create(
        project=project, name="disabled trigger", enabled=False, trigger_config={"eventName": name}
    )
    waiting = Workflow.objects.create(
        project=project, name="waits", enabled=True, trigger_config={"eventName": "other"}
    )
    WorkflowStep.objects.create(
        project=project,
        workflow=waiting,
        type=WorkflowStep.Type.WAIT_FOR_EVENT,
        name="wait",
        config={"eventName": name, "timeout": 3600},
    )
    both = Workflow.objects.create(project=project, name="both", trigger_config={"eventName": name})
    WorkflowStep.objects.create(
        project=project,
        workflow=both,
        type=WorkflowStep.Type.WAIT_FOR_EVENT,
        name="again",
        config={"eventName": name},
    )
    manual = Workflow.objects.create(
        project=project,
        name="manual",
        trigger_type=Workflow.TriggerType.MANUAL,
        trigger_config={"eventName": name},
    )
    WorkflowStep.objects.create(
        project=project,
        workflow=manual,
        type=WorkflowStep.Type.SEND_EMAIL,
        name="not a wait",
        config={"eventName": name},
    )
    return [top, nested], [trigger, waiting, both]


def refs(objects):
    return [{"id": str(o.id), "name": o.name} for o in objects]


def test_usage_lists_references_through_nested_conditions_waits_and_disabled_workflows(sk, project):
    add_events(project, ("purchased", day(1)))
    segments, workflows = make_references(project, "purchased")
    body = sk.get("/events/purchased/usage").json()
    assert body["usedInSegments"] == refs(segments)
    assert sorted(body["usedInWorkflows"], key=lambda r: r["name"]) == sorted(
        refs(workflows), key=lambda r: r["name"]
    )
    assert (body["totalCount"], body["canDelete"], body["isSystemEvent"]) == (1, False, False)


def test_each_reference_kind_alone_blocks_the_delete(sk, project):
    add_events(project, ("n", day(1)))
    wf = Workflow.objects.create(project=project, name="w", trigger_config={"eventName": "other"})
    WorkflowStep.objects.create(
        project=project, workflow=wf, type="WAIT_FOR_EVENT", name="w", config={"eventName": "n"}
    )
    response = sk.delete("/events/n")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "usedInSegments": [],
        "usedInWorkflows": [{"id": str(wf.id), "name": "w"}],
    }
    wf.delete()
    assert sk.delete("/events/n").json() == {"deletedCount": 1}


# ---------------------------------------------------------------------------------------------
# DELETE /events/<name>


@pytest.mark.parametrize(
    "name",
    ["email.open", "email.sent", "contact.subscribed", "contact.unsubscribed", "segment.vip.exit"],
)
def test_system_names_cannot_be_deleted(sk, project, name):
    add_events(project, (name, day(1)))
    response = sk.delete(url(name))
    assert_error(response, 400, "BAD_REQUEST", f"Cannot delete reserved system event: {name}")
    assert Event.objects.filter(name=name).count() == 1


def test_referenced_names_cannot_be_deleted(sk, project):
    add_events(project, ("purchased", day(1)), ("purchased", day(2)))
    segments, workflows = make_references(project, "purchased")
    response = sk.delete("/events/purchased")
    body = assert_error(
        response,
        400,
        "CONFLICT",
        "Cannot delete event: used in 2 segment(s) and 3 workflow(s)",
        details=response.json()["error"]["details"],
    )
    details = body["error"]["details"]
    assert details["usedInSegments"] == refs(segments)
    assert sorted(details["usedInWorkflows"], key=lambda r: r["name"]) == sorted(
        refs(workflows), key=lambda r: r["name"]
    )
    assert Event.objects.filter(name="purchased").count() == 2


def test_unknown_name_deletes_nothing(sk, project):
    add_events(project, ("kept", day(1)))
    assert sk.delete("/events/never-tracked").json() == {"deletedCount": 0}
    assert Event.objects.count() == 1


def test_delete_removes_only_that_name_of_that_project(pk, sk, project, other_project):
    add_events(project, *[("old", day(n)) for n in range(1, 4)], ("older", day(1)), ("Old", day(1)))
    add_events(other_project, ("old", day(1)))
    track(pk, {"email": "a@example.com", "event": "old"})
    assert sk.delete("/events/old").json() == {"deletedCount": 4}
    assert sorted(Event.objects.filter(project=project).values_list("name", flat=True)) == [
        "Old",
        "older",
    ]
    assert Event.objects.filter(project=other_project, name="old").count() == 1
    assert Contact.objects.filter(project=project).count() == 1  # contacts are untouched


def test_events_created_after_the_cutoff_survive(sk, project):
    add_events(project, ("old", day(1)), ("old", NOW + timedelta(hours=1)))
    assert sk.delete("/events/old").json() == {"deletedCount": 1}
    (survivor,) = Event.objects.filter(name="old")
    assert survivor.created_at > NOW
    assert sk.get("/events/old/usage").json()["totalCount"] == 1


@override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 2})
def test_delete_in_small_batches(sk, project):
    add_events(project, *[("many", day(1) + timedelta(seconds=i)) for i in range(7)])
    assert sk.delete("/events/many").json() == {"deletedCount": 7}
    assert not Event.objects.exists()


def test_other_projects_references_do_not_block(sk, project, other_project):
    add_events(project, ("n", day(1)))
    Segment.objects.create(
        project=other_project, name="theirs", condition=condition(event_filter("n"))
    )
    Workflow.objects.create(project=other_project, name="theirs", trigger_config={"eventName": "n"})
    assert sk.get("/events/n/usage").json()["canDelete"] is True
    assert sk.delete("/events/n").json() == {"deletedCount": 1}


# ---------------------------------------------------------------------------------------------
# Odd names in URLs (README, "Events")

ODD_NAMES = [
    "purchase.completed",
    "with space",
    " leading space",
    "a/b",
    "a//b",
    "trailing/",
    "/leading",
    "names",
    "stats",
    "usage",
    "events",
    "contact/x",
    "contact/x/usage",
    "foo/usage",
    "names/usage",
    "café ☕ 日本",
    "50%off",
    "q?x=1&y=2",
    "hash#tag",
    "plus+sign",
    "semi;colon",
    "UPPER.lower",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_round_trip_through_usage_and_delete(pk, sk, project, name):
    assert track(pk, {"email": "a@example.com", "event": name}).status_code == 200
    add_events(project, ("bystander", day(1)), (name + "x", day(1)))
    usage = sk.get(url(name) + "/usage")
    assert usage.status_code == 200, usage.content
    assert (usage.json()["totalCount"], usage.json()["uniqueContacts"]) == (1, 1)
    assert [e["name"] for e in sk.get("/events", {"eventName": name}).json()["events"]] == [name]
    response = sk.delete(url(name))
    assert response.json() == {"deletedCount": 1}
    assert sorted(Event.objects.values_list("name", flat=True)) == sorted(["bystander", name + "x"])


def test_an_event_named_contact_can_be_deleted(pk, sk, project):
    """``/events/contact/usage`` lists a contact's events (Plunk's contact route wins over the
    usage of a name "contact"), but ``DELETE /events/contact`` still deletes the name."""
    track(pk, {"email": "a@example.com", "event": "contact"})
    assert sk.get("/events/contact/usage").json()["events"] == []
    assert sk.delete("/events/contact").json() == {"deletedCount": 1}


def test_names_and_stats_routes_still_answer_with_such_events(pk, sk, project):
    for name in ("names", "stats", "contact/x"):
        track(pk, {"email": "a@example.com", "event": name})
    assert sorted(sk.get("/events/names").json()["eventNames"]) == ["contact/x", "names", "stats"]
    assert len(sk.get("/events/stats").json()) == 3


# ---------------------------------------------------------------------------------------------
# Unknown routes and methods


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/events/"),
        ("get", "/v1"),
        ("get", "/v1/"),
        ("post", "/v1/track/"),
        ("post", "/v1/send/"),
        ("get", "/templates/a/b"),
        ("get", "/v1/track/batch/x"),
        ("get", "/contacts/a/b/c"),
        ("delete", "/segments/a/b"),
        ("get", "/workflows/x/y"),
    ],
)
@pytest.mark.parametrize("authenticated", [True, False])
def test_unknown_routes_are_404_envelopes(sk, client_for, method, path, authenticated):
    client = sk if authenticated else client_for(None)
    response = getattr(client, method)(path)
    assert_error(response, 404, "RESOURCE_NOT_FOUND", f"Route {method.upper()} {path} not found")


@pytest.mark.parametrize(
    ("client", "method", "path"),
    [
        ("pk", "get", "/v1/track"),
        ("pk", "put", "/v1/track"),
        ("pk", "delete", "/v1/track/batch"),
        ("sk", "post", "/events"),
        ("sk", "delete", "/events"),
        ("sk", "put", "/events/names"),
        ("sk", "post", "/events/stats"),
        ("sk", "patch", "/events/some-name"),
        ("sk", "get", "/events/some-name"),
        ("sk", "post", "/events/some-name/usage"),
        ("sk", "put", f"/events/contact/{uuid.UUID(int=1)}"),
    ],
)
def test_wrong_method_is_405_envelope(request, client, method, path):
    response = getattr(request.getfixturevalue(client), method)(path)
    assert_error(response, 405, "METHOD_NOT_ALLOWED", f'Method "{method.upper()}" not allowed.')
    assert response["Allow"]


# ---------------------------------------------------------------------------------------------
# Project isolation


def test_every_events_endpoint_is_scoped_to_the_key_project(
    pk, sk, project, other_project, client_for
):
    theirs_pk = client_for(other_project.public_key)
    theirs_sk = client_for(other_project.secret_key)
    track(pk, {"email": "me@example.com", "event": "shared"})
    track(pk, {"email": "me@example.com", "event": "mine"})
    for _ in range(3):
        track(theirs_pk, {"email": "you@example.com", "event": "shared"})
    track(theirs_pk, {"email": "you@example.com", "event": "theirs"})
    Segment.objects.create(
        project=other_project, name="s", condition=condition(event_filter("shared"))
    )

    assert {e["name"] for e in sk.get("/events").json()["events"]} == {"shared", "mine"}
    assert sk.get("/events", {"eventName": "theirs"}).json()["events"] == []
    assert sk.get("/events/names").json() == {"eventNames": ["mine", "shared"]}
    assert sk.get("/events/stats").json() == [
        {"name": "mine", "count": 1},
        {"name": "shared", "count": 1},
    ]
    assert theirs_sk.get("/events/stats").json() == [
        {"name": "shared", "count": 3},
        {"name": "theirs", "count": 1},
    ]
    usage = sk.get("/events/shared/usage").json()
    assert (usage["totalCount"], usage["uniqueContacts"], usage["usedInSegments"]) == (1, 1, [])
    assert theirs_sk.get("/events/shared/usage").json()["totalCount"] == 3
    you = Contact.objects.get(email="you@example.com")
    assert sk.get(f"/events/contact/{you.id}").json()["events"] == []
    assert len(theirs_sk.get(f"/events/contact/{you.id}").json()["events"]) == 4
    assert sk.delete("/events/theirs").json() == {"deletedCount": 0}
    assert sk.delete("/events/shared").json() == {"deletedCount": 1}
    assert Event.objects.filter(project=other_project).count() == 4
    assert theirs_sk.delete("/events/shared").status_code == 400  # their own segment blocks
