"""``plunk_events.track()`` for host code (issue 2): the rules of ``POST /v1/track`` without
HTTP, and the ``event_tracked`` / ``contact_subscription_changed`` signals sent on commit."""

from __future__ import annotations

import pytest
from django.db import transaction

import plunk_events
from plunk_events import signals
from plunk_events.models import Contact, Event
from plunk_events.services.errors import ValidationFailed
from plunk_events.services.ingest import TrackResult


@pytest.fixture
def received():
    """Connect real receivers to both signals; yields ``{"tracked": [...], "changed": [...]}``."""
    calls: dict[str, list[dict]] = {"tracked": [], "changed": []}

    def on_tracked(sender, **kwargs):
        calls["tracked"].append({"sender": sender, **kwargs})

    def on_changed(sender, **kwargs):
        calls["changed"].append({"sender": sender, **kwargs})

    signals.event_tracked.connect(on_tracked)
    signals.contact_subscription_changed.connect(on_changed)
    yield calls
    signals.event_tracked.disconnect(on_tracked)
    signals.contact_subscription_changed.disconnect(on_changed)


@pytest.mark.django_db
def test_track_applies_the_endpoint_rules(project):
    result = plunk_events.track(
        project,
        "  Ada@Example.COM ",
        "signed_up",
        data={"plan": "pro", "id": "x", "once": {"value": 1, "persistent": False}, "n": ""},
    )
    assert isinstance(result, TrackResult)
    assert result.created_contact is True
    contact = Contact.objects.get(pk=result.contact_id)
    assert (contact.project, contact.email, contact.subscribed) == (
        project,
        "ada@example.com",
        True,
    )
    assert contact.data == {"plan": "pro"}
    event = Event.objects.get(pk=result.event_id)
    assert (event.name, event.contact_id, event.created_at) == (
        "signed_up",
        contact.id,
        result.timestamp,
    )
    assert event.data == {
        "plan": "pro",
        "id": "x",
        "once": {"value": 1, "persistent": False},
        "n": "",
    }

    again = plunk_events.track(project, "ada@example.com", "upgraded", data={"plan": None})
    assert again.contact_id == result.contact_id
    assert again.created_contact is False
    contact.refresh_from_db()
    assert contact.data is None


@pytest.mark.django_db
def test_track_subscribed_semantics(project):
    plunk_events.track(project, "a@example.com", "one", subscribed=False)
    plunk_events.track(project, "a@example.com", "two")
    assert Contact.objects.get().subscribed is False
    plunk_events.track(project, "a@example.com", "three", subscribed=True)
    assert Contact.objects.get().subscribed is True
    names = list(Event.objects.order_by("created_at", "id").values_list("name", flat=True))
    assert names == ["one", "two", "contact.subscribed", "three"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs", "errors"),
    [
        (
            ("not-an-email", "x"),
            {},
            [{"field": "email", "message": "Invalid email", "code": "invalid_string"}],
        ),
        (
            ("a@example.com", ""),
            {},
            [
                {
                    "field": "event",
                    "message": "String must contain at least 1 character(s)",
                    "code": "too_small",
                }
            ],
        ),
        (
            ("a@example.com", "x"),
            {"subscribed": "yes"},
            [
                {
                    "field": "subscribed",
                    "message": "Expected boolean, received string",
                    "code": "invalid_type",
                    "received": "string",
                }
            ],
        ),
        (
            ("a@example.com", "x"),
            {"data": {"locale": 3}},
            [
                {
                    "field": "data.locale",
                    "message": "Expected string, received number",
                    "code": "invalid_type",
                    "received": "number",
                }
            ],
        ),
        (
            ("a@example.com", "x"),
            {"data": ["list"]},
            [
                {
                    "field": "data",
                    "message": "Expected object, received array",
                    "code": "invalid_type",
                    "received": "array",
                }
            ],
        ),
        (
            ("a@example.com", "email.open"),
            {},
            [
                {
                    "field": "event",
                    "message": 'Event name "email.open" is reserved for system use and cannot be '
                    "manually tracked",
                    "code": "reserved_event",
                    "received": "email.open",
                }
            ],
        ),
    ],
)
def test_track_raises_validation_failed_and_writes_nothing(project, args, kwargs, errors):
    with pytest.raises(ValidationFailed) as info:
        plunk_events.track(project, *args, **kwargs)
    assert info.value.errors == errors
    assert info.value.status_code == 422
    assert (Contact.objects.count(), Event.objects.count()) == (0, 0)


@pytest.mark.parametrize("name", ["segment.entry", "segment.a.b.exit", "contact.unsubscribed"])
@pytest.mark.django_db
def test_track_refuses_reserved_names(project, name):
    with pytest.raises(ValidationFailed) as info:
        plunk_events.track(project, "a@example.com", name)
    assert info.value.message == "Cannot track reserved system event"
    assert info.value.errors[0]["code"] == "reserved_event"


@pytest.mark.django_db(transaction=True)
def test_event_tracked_is_sent_on_commit_only(project, received):
    with transaction.atomic():
        result = plunk_events.track(project, "a@example.com", "signed_up", data={"k": 1})
        assert received["tracked"] == []  # not before the commit
    (call,) = received["tracked"]
    assert call["sender"] is Event
    assert call["event"].id == result.event_id
    assert call["event"].name == "signed_up"
    assert call["event"].data == {"k": 1}
    assert call["contact"].id == result.contact_id
    assert call["contact"].email == "a@example.com"
    assert call["contact"].data == {"k": 1}
    assert call["created_contact"] is True
    assert received["changed"] == []  # a new contact does not "change" subscription

    plunk_events.track(project, "a@example.com", "again")
    assert received["tracked"][-1]["created_contact"] is False
    assert len(received["tracked"]) == 2


@pytest.mark.django_db(transaction=True)
def test_no_signal_when_the_transaction_rolls_back(project, received):
    plunk_events.track(project, "a@example.com", "first")
    received["tracked"].clear()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        plunk_events.track(project, "a@example.com", "lost", subscribed=False)
        raise Boom
    assert received == {"tracked": [], "changed": []}
    assert list(Event.objects.values_list("name", flat=True)) == ["first"]
    assert Contact.objects.get().subscribed is True


@pytest.mark.django_db(transaction=True)
def test_no_signal_for_a_rejected_track(project, received):
    with pytest.raises(ValidationFailed):
        plunk_events.track(project, "a@example.com", "email.sent")
    assert received == {"tracked": [], "changed": []}


@pytest.mark.django_db(transaction=True)
def test_contact_subscription_changed_on_flip(project, received):
    plunk_events.track(project, "a@example.com", "one", subscribed=False)  # new: no flip
    plunk_events.track(project, "a@example.com", "two", subscribed=False)  # same: no flip
    assert received["changed"] == []

    plunk_events.track(project, "a@example.com", "three", subscribed=True)
    (call,) = received["changed"]
    assert call["sender"] is Contact
    assert call["subscribed"] is True
    assert call["contact"].email == "a@example.com"
    assert call["contact"].subscribed is True
    assert call["contact"].id == Contact.objects.get().id

    plunk_events.track(project, "a@example.com", "four", subscribed=False)
    assert [c["subscribed"] for c in received["changed"]] == [True, False]
    assert [c["event"].name for c in received["tracked"]] == ["one", "two", "three", "four"]


@pytest.mark.django_db(transaction=True)
def test_signals_of_the_http_endpoints(project, client_for, received):
    """The endpoints go through the same store, so their tracks signal too (batch included)."""
    pk = client_for(project.public_key)
    pk.post("/v1/track", {"email": "a@example.com", "event": "web"}, format="json")
    pk.post(
        "/v1/track/batch",
        {
            "events": [
                {"email": "a@example.com", "event": "b1", "subscribed": False},
                {"email": "a@example.com", "event": "b2"},
                {"email": "a@example.com", "event": "b3", "subscribed": True},
                {"email": "bad", "event": "b4"},
            ]
        },
        format="json",
    )
    assert [c["event"].name for c in received["tracked"]] == ["web", "b1", "b2", "b3"]
    assert [c["subscribed"] for c in received["changed"]] == [False, True]
