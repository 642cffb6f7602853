"""On PostgreSQL a plain track runs as one statement; with a signal receiver (or an
Idempotency-Key) it takes the general path. Both must leave exactly the same data behind."""

from __future__ import annotations

import pytest

from plunk_events import signals
from plunk_events.models import Contact, Event
from plunk_events.services import store
from plunk_events.services.projects import create_project
from plunk_events.services.validation import parse_track

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db]

SCRIPT = [
    {"email": "A@x.io", "event": "signup", "data": {"plan": "free", "n": 1}},
    {"email": "a@x.io", "event": "upgrade", "data": {"plan": "pro", "n": None, "note": ""}},
    {"email": "a@x.io", "event": "x", "subscribed": False, "data": {"nested": {"a": 1}}},
    {"email": "a@x.io", "event": "x", "subscribed": False, "data": {"nested": {"b": 2}}},
    {"email": "a@x.io", "event": "y", "subscribed": True, "data": {"id": "reserved", "k": 1}},
    {"email": "b@x.io", "event": "y", "subscribed": False},
    {"email": "b@x.io", "event": "z", "data": {"order": {"value": 7, "persistent": False}}},
    {"email": "b@x.io", "event": "z", "data": {"plan": {"value": "team", "persistent": True}}},
    {"email": "b@x.io", "event": "z", "data": {"plan": None}},
    {"email": "c@x.io", "event": "only", "data": {"gone": None}},
]


def run_script(project):
    results = [store.track(project, parse_track(body)) for body in SCRIPT]
    contacts = sorted(
        Contact.objects.filter(project=project).values_list("email", "subscribed", "data")
    )
    events = list(
        Event.objects.filter(project=project)
        .order_by("created_at", "id")
        .values_list("contact__email", "name", "data")
    )
    created = [r.created_contact for r in results]
    return contacts, events, created


def test_one_statement_and_general_path_agree():
    fast = run_script(create_project("fast"))

    def receiver(**kwargs):
        pass

    signals.event_tracked.connect(receiver)
    try:
        general = run_script(create_project("general"))
    finally:
        signals.event_tracked.disconnect(receiver)
    assert fast == general
    contacts, events, created = fast
    assert contacts == [
        ("a@x.io", True, {"k": 1, "plan": "pro", "nested": {"b": 2}}),
        ("b@x.io", False, None),
        ("c@x.io", True, None),
    ]
    names = [name for _, name, _ in events]
    # a@x.io flips off then on; b@x.io is created unsubscribed, which records no event.
    assert (names.count("contact.unsubscribed"), names.count("contact.subscribed")) == (1, 1)
    assert names[2:4] == ["contact.unsubscribed", "x"]  # the flip right before its event
    assert created == [True, False, False, False, False, True, False, False, False, True]
