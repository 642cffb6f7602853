"""``importer.import_events``: historic events with their own timestamps, through the track rules."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from plunk_events.models import Contact, Event, EventNameTotal
from plunk_events.services import contacts, importer, rollups
from plunk_events.services.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def ago(**kwargs) -> datetime:
    return timezone.now() - timedelta(**kwargs)


def raw_counts(project, start=None, end=None) -> Counter:
    events = Event.objects.filter(project=project)
    if start is not None:
        events = events.filter(created_at__gte=start)
    if end is not None:
        events = events.filter(created_at__lte=end)
    return Counter(dict(events.values_list("name").annotate(n=Count("id")).order_by()))


def test_rows_are_applied_oldest_first_with_their_own_timestamps(project):
    email_id = uuid.uuid4()
    t1, t2, t3, t4 = ago(days=30), ago(days=20), ago(days=10), ago(days=5)
    written = importer.import_events(
        project,
        [
            # Out of order on purpose: the import sorts by created_at.
            {"email": "ann@example.com", "name": "upgraded", "data": {"plan": "pro"}, "created_at": t3},
            {
                "email": " Ann@Example.com ",
                "name": "signed_up",
                "data": {"plan": "free", "ref": {"value": "ads", "persistent": False}},
                "created_at": t1,
            },
            {"email": "ann@example.com", "name": "prefs", "data": None, "created_at": t2, "subscribed": False},
            {
                "email": "ann@example.com",
                "name": "email.sent",
                "data": {"subject": "Hi", "plan": "ignored"},
                "created_at": t4,
                "email_id": email_id,
            },
            {"email": "bob@example.com", "name": "signed_up", "data": None, "created_at": t2, "subscribed": False},
        ],
    )  # fmt: skip

    # 5 rows + the contact.unsubscribed of Ann's flip (Bob is new: no system event).
    assert written == 6
    ann = Contact.objects.get(project=project, email="ann@example.com")
    bob = Contact.objects.get(project=project, email="bob@example.com")
    assert (ann.created_at, ann.updated_at, ann.subscribed) == (t1, t4, False)
    # Merged in time order; the non-persistent value and the system event's data stay off it.
    assert ann.data == {"plan": "pro"}
    assert (bob.created_at, bob.subscribed, bob.data) == (t2, False, None)
    events = list(
        Event.objects.filter(project=project, contact=ann)
        .order_by("created_at", "id")
        .values_list("name", "created_at", "email_id")
    )
    assert events == [
        ("signed_up", t1, None),
        ("contact.unsubscribed", t2, None),
        ("prefs", t2, None),
        ("upgraded", t3, None),
        ("email.sent", t4, email_id),
    ]
    signed_up = Event.objects.get(contact=ann, name="signed_up")
    assert signed_up.data == {"plan": "free", "ref": {"value": "ads", "persistent": False}}


def test_existing_contacts_are_merged_and_flips_recorded(project):
    contacts.upsert_contact(project, "cat@example.com", {"plan": "free", "city": "Delft"})
    before = Contact.objects.get(project=project)

    importer.import_events(
        project,
        [
            {"email": "cat@example.com", "name": "moved", "data": {"city": None}, "created_at": ago(days=3)},
            {"email": "cat@example.com", "name": "optout", "data": {}, "created_at": ago(days=2), "subscribed": False},
        ],
    )  # fmt: skip

    cat = Contact.objects.get(project=project)
    assert cat.id == before.id and cat.created_at == before.created_at
    assert (cat.data, cat.subscribed) == ({"plan": "free"}, False)
    assert cat.updated_at >= before.updated_at
    assert Event.objects.filter(project=project, name="contact.unsubscribed").count() == 1


def test_a_bad_row_writes_nothing(project):
    good = {"email": "dan@example.com", "name": "ok", "data": None, "created_at": ago(days=1)}
    with pytest.raises(ValidationFailed) as caught:
        importer.import_events(
            project,
            [
                good,
                {"email": "nope", "name": "", "data": [1], "created_at": datetime(2024, 1, 1)},
                {**good, "email_id": "not-a-uuid", "subscribed": "yes"},
            ],
        )

    assert caught.value.errors == [
        {"field": "rows.1.email", "message": "Invalid email", "code": "invalid_string"},
        {
            "field": "rows.1.name",
            "message": "String must contain at least 1 character(s)",
            "code": "too_small",
        },
        {
            "field": "rows.1.data",
            "message": "Expected object, received array",
            "code": "invalid_type",
            "received": "array",
        },
        {
            "field": "rows.1.created_at",
            "message": "Expected a timezone-aware datetime",
            "code": "invalid_type",
        },
        {
            "field": "rows.2.subscribed",
            "message": "Expected boolean, received string",
            "code": "invalid_type",
            "received": "string",
        },
        {"field": "rows.2.email_id", "message": "Invalid uuid", "code": "invalid_string"},
    ]
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_nothing_to_import(project):
    assert importer.import_events(project, []) == 0


def test_names_and_stats_stay_exact_when_importing_behind_the_rollup(project):
    """A second import reaching back before the rollup watermark is folded into the rollup."""
    first = [
        {"email": f"u{i}@example.com", "name": name, "data": None, "created_at": ago(days=d)}
        for i, (name, d) in enumerate(
            [("a", 10), ("a", 10), ("b", 8), ("a", 4), ("c", 2), ("a", 0.01)]
        )
    ]
    importer.import_events(project, first)
    project.refresh_from_db()
    watermark = project.events_rolled_until
    assert watermark is not None and watermark > ago(days=2)
    assert rollups.event_counts(project) == raw_counts(project)

    second = [
        {"email": "u0@example.com", "name": "a", "data": None, "created_at": ago(days=10)},
        {"email": "new@example.com", "name": "b", "data": None, "created_at": ago(days=40)},
        {"email": "new@example.com", "name": "d", "data": None, "created_at": ago(days=30)},
        {"email": "new@example.com", "name": "a", "data": None, "created_at": ago(minutes=5)},
    ]
    importer.import_events(project, second)

    assert rollups.event_counts(project) == raw_counts(project) == Counter(a=6, b=2, c=1, d=1)
    assert rollups.event_names(project) == ["a", "b", "c", "d"]
    now = timezone.now()
    for start, end in [
        (ago(days=45), None),
        (ago(days=35), ago(days=9)),
        (datetime.combine(ago(days=10).date(), datetime.min.time(), UTC), ago(days=1)),
        (None, ago(days=20)),
    ]:
        assert rollups.event_counts(project, start, end) == raw_counts(project, start, end)
    assert sum(rollups.daily_counts(project, ago(days=60), now).values()) == 10
    oldest_b = EventNameTotal.objects.get(project=project, name="b")
    assert oldest_b.first_seen == second[1]["created_at"]
