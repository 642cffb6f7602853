"""``POST /v1/track/batch`` (extension, issue 4): per-item results, limits, and the same rules
as single tracks, including several items for one email."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from plunk_events.models import Contact, Event

from .helpers import TIMESTAMP, assert_error, assert_validation, counts

pytestmark = pytest.mark.django_db


def batch(client, events):
    return client.post("/v1/track/batch", {"events": events}, format="json")


def names_oldest_first(project):
    return list(
        Event.objects.filter(project=project)
        .order_by("created_at", "id")
        .values_list("name", flat=True)
    )


def test_mixed_items_get_per_item_results(pk, project):
    items = [
        {"email": "A@Example.com ", "event": "one", "data": {"plan": "pro"}},
        {"email": "not-an-email", "event": "two"},
        {"email": "b@example.com", "event": "email.open"},
        {"email": "c@example.com", "event": "three", "data": {"locale": 1}},
        "not an object",
        {"email": "d@example.com", "event": "four"},
    ]
    response = batch(pk, items)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert (body["accepted"], body["rejected"]) == (2, 4)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r["success"] for r in results] == [True, False, False, False, False, True]
    assert results[1] == {
        "index": 1,
        "success": False,
        "errors": [
            {"field": "events.1.email", "message": "Invalid email", "code": "invalid_string"}
        ],
    }
    assert results[2] == {
        "index": 2,
        "success": False,
        "errors": [
            {
                "field": "events.2.event",
                "message": 'Event name "email.open" is reserved for system use and cannot be '
                "manually tracked",
                "code": "reserved_event",
                "received": "email.open",
            }
        ],
    }
    assert results[3]["errors"] == [
        {
            "field": "events.3.data.locale",
            "message": "Expected string, received number",
            "code": "invalid_type",
            "received": "number",
        }
    ]
    assert results[4]["errors"] == [
        {
            "field": "events.4",
            "message": "Expected object, received string",
            "code": "invalid_type",
            "received": "string",
        }
    ]
    # Only the valid items were written, each like a single track.
    assert set(Contact.objects.values_list("email", flat=True)) == {
        "a@example.com",
        "d@example.com",
    }
    first, last = results[0]["data"], results[5]["data"]
    assert set(first) == {"contact", "event", "timestamp"}
    assert TIMESTAMP.match(first["timestamp"])
    assert Event.objects.get(pk=first["event"]).name == "one"
    assert Event.objects.get(pk=first["event"]).data == {"plan": "pro"}
    assert str(Event.objects.get(pk=last["event"]).contact_id) == last["contact"]
    assert Contact.objects.get(pk=first["contact"]).data == {"plan": "pro"}
    assert counts(project) == (2, 2)


def test_a_bad_item_does_not_poison_an_item_for_the_same_email(pk, project):
    response = batch(
        pk,
        [
            {"email": "x@example.com", "event": "ok", "data": {"a": 1}},
            {"email": "x@example.com", "event": "ok", "subscribed": "no", "data": {"b": 2}},
        ],
    )
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert Contact.objects.get().data == {"a": 1}
    assert counts(project) == (1, 1)


def test_all_items_invalid_is_422_and_writes_nothing(pk, project):
    response = batch(pk, [{"email": "bad", "event": "x"}, {"email": "a@b.co", "event": ""}])
    assert_validation(
        response,
        [
            {"field": "events.0.email", "message": "Invalid email", "code": "invalid_string"},
            {
                "field": "events.1.event",
                "message": "String must contain at least 1 character(s)",
                "code": "too_small",
            },
        ],
    )
    assert counts() == (0, 0)


def test_all_items_reserved_is_422(pk):
    response = batch(pk, [{"email": "a@b.co", "event": "contact.subscribed"}])
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["code"] == "reserved_event"
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {},
            {
                "field": "events",
                "message": "Required",
                "code": "invalid_type",
                "received": "undefined",
            },
        ),
        (
            {"events": {"email": "a@b.co"}},
            {
                "field": "events",
                "message": "Expected array, received object",
                "code": "invalid_type",
                "received": "object",
            },
        ),
        (
            {"events": None},
            {
                "field": "events",
                "message": "Expected array, received null",
                "code": "invalid_type",
                "received": "null",
            },
        ),
        (
            {"events": []},
            {
                "field": "events",
                "message": "Array must contain at least 1 element(s)",
                "code": "too_small",
            },
        ),
        (
            [{"email": "a@b.co", "event": "x"}],
            {
                "field": "body",
                "message": "Expected object, received array",
                "code": "invalid_type",
                "received": "array",
            },
        ),
    ],
    ids=["missing", "object", "null", "empty", "bare-array"],
)
def test_bad_envelope_is_422(pk, body, error):
    response = pk.post("/v1/track/batch", body, format="json")
    assert_validation(response, [error])
    assert counts() == (0, 0)


def test_more_than_500_items_is_422(pk):
    items = [{"email": f"u{i}@example.com", "event": "x"} for i in range(501)]
    response = batch(pk, items)
    assert_validation(
        response,
        [
            {
                "field": "events",
                "message": "Array must contain at most 500 element(s)",
                "code": "too_big",
            }
        ],
    )
    assert counts() == (0, 0)


def test_500_items_are_accepted(pk, project):
    items = [{"email": f"u{i % 50}@example.com", "event": f"e{i % 7}"} for i in range(500)]
    body = batch(pk, items).json()
    assert (body["accepted"], body["rejected"]) == (500, 0)
    assert counts(project) == (50, 500)


@override_settings(PLUNK_EVENTS={"BATCH_MAX_EVENTS": 2})
def test_item_limit_is_a_setting(pk):
    item = {"email": "a@b.co", "event": "x"}
    assert batch(pk, [item, item]).status_code == 200
    response = batch(pk, [item, item, item])
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["message"] == (
        "Array must contain at most 2 element(s)"
    )


def test_body_over_500_kb_is_413(pk):
    items = [{"email": "a@b.co", "event": "x", "data": {"pad": "x" * 2000}} for _ in range(260)]
    raw = json.dumps({"events": items})
    assert len(raw) > 500 * 1024
    response = pk.post("/v1/track/batch", raw, content_type="application/json")
    assert_error(
        response,
        413,
        "BAD_REQUEST",
        f"Request body is {len(raw)} bytes; the limit is {500 * 1024}",
    )
    assert counts() == (0, 0)


@override_settings(PLUNK_EVENTS={"BATCH_MAX_BYTES": 10_000_000})
def test_body_over_the_django_upload_limit_is_413(pk):
    """Past DATA_UPLOAD_MAX_MEMORY_SIZE Django refuses to read the body: still an envelope."""
    raw = json.dumps(
        {"events": [{"email": "a@b.co", "event": "x", "data": {"pad": "x" * 3_000_000}}]}
    )
    response = pk.post("/v1/track/batch", raw, content_type="application/json")
    assert_error(response, 413, "BAD_REQUEST", "Request body is too large")
    assert counts() == (0, 0)


def test_malformed_json_is_400(pk):
    response = pk.post("/v1/track/batch", '{"events": [', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid JSON in request body"


def test_same_email_repeated_merges_in_order_and_emits_subscription_events(pk, project):
    email = "Repeat@Example.com"
    items = [
        {"email": email, "event": "e0", "data": {"a": 1, "b": 1}},
        {"email": email.lower(), "event": "e1", "data": {"b": 2, "a": None, "c": ""}},
        {
            "email": email,
            "event": "e2",
            "subscribed": False,
            "data": {"n": {"value": 1, "persistent": False}},
        },
        {"email": email, "event": "e3", "subscribed": False},
        {
            "email": email,
            "event": "e4",
            "subscribed": True,
            "data": {"d": {"value": 4, "persistent": True}},
        },
        {"email": email, "event": "e5"},
    ]
    body = batch(pk, items).json()
    assert (body["accepted"], body["rejected"]) == (6, 0)
    contacts = {r["data"]["contact"] for r in body["results"]}
    assert len(contacts) == 1
    contact = Contact.objects.get()
    assert str(contact.id) in contacts
    assert contact.email == "repeat@example.com"
    assert contact.data == {"b": 2, "d": 4}
    assert contact.subscribed is True
    # Each flip's system event sits right before the tracked event that caused it.
    assert names_oldest_first(project) == [
        "e0",
        "e1",
        "contact.unsubscribed",
        "e2",
        "e3",
        "contact.subscribed",
        "e4",
        "e5",
    ]
    # Each event keeps its data as sent.
    stored = {e.name: e.data for e in Event.objects.all()}
    assert stored["e1"] == {"b": 2, "a": None, "c": ""}
    assert stored["contact.subscribed"] is None


def test_batch_on_existing_contacts_follows_the_subscribed_rules(pk, project):
    pk.post(
        "/v1/track", {"email": "u@example.com", "event": "seed", "subscribed": False}, format="json"
    )
    pk.post(
        "/v1/track", {"email": "s@example.com", "event": "seed", "data": {"k": 1}}, format="json"
    )
    body = batch(
        pk,
        [
            {"email": "u@example.com", "event": "x"},  # stays unsubscribed
            {"email": "s@example.com", "event": "x", "subscribed": False, "data": {"k": None}},
            {"email": "n@example.com", "event": "x", "subscribed": False},  # new: no event
        ],
    ).json()
    assert body["accepted"] == 3
    state = {c.email: (c.subscribed, c.data) for c in Contact.objects.all()}
    assert state == {
        "u@example.com": (False, None),
        "s@example.com": (False, None),
        "n@example.com": (False, None),
    }
    assert Event.objects.filter(name="contact.unsubscribed").count() == 1
    assert Event.objects.get(name="contact.unsubscribed").contact.email == "s@example.com"
    assert counts(project) == (3, 6)


def test_batch_events_are_listed_and_counted(pk, sk, project):
    batch(pk, [{"email": "a@b.co", "event": "x"}, {"email": "c@d.co", "event": "x"}])
    assert sk.get("/events/stats").json() == [{"name": "x", "count": 2}]
    assert sk.get("/events/x/usage").json()["uniqueContacts"] == 2


def test_idempotency_key_makes_a_retried_batch_a_409(pk):
    body = {"events": [{"email": "a@b.co", "event": "x"}, {"email": "c@b.co", "event": "y"}]}
    first = pk.post("/v1/track/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert first.status_code == 200
    again = pk.post("/v1/track/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert again.json()["error"]["details"]["originalRequest"] == "POST /v1/track/batch"
    assert counts() == (2, 2)
