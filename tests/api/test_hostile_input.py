"""Input the databases cannot store, or that would overflow, is a 4xx and changes nothing."""

from __future__ import annotations

import json

import pytest

from plunk_events.models import Contact, Event, Segment

pytestmark = pytest.mark.django_db


def post_raw(client, path, raw):
    return client.post(path, raw, content_type="application/json")


def nothing_written():
    return not Contact.objects.exists() and not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@b.co", "event": "a\u0000b"}, "event"),
        ({"email": "a@b.co", "event": "x", "data": {"k": "v\u0000"}}, "data.k"),
        ({"email": "a@b.co", "event": "x", "data": {"k\u0000": 1}}, "data.k\u0000"),
        ({"email": "a@b.co", "event": "x", "data": {"k": [{"deep": "\u0000"}]}}, "data.k.0.deep"),
    ],
)
def test_nul_characters_are_422_with_the_field(pk, body, field):
    response = pk.post("/v1/track", body, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["errors"] == [
        {
            "field": field,
            "message": "String must not contain the NUL character (\\u0000)",
            "code": "invalid_string",
        }
    ]
    assert nothing_written()


def test_lone_surrogates_are_422(pk):
    response = post_raw(pk, "/v1/track", '{"email": "a@b.co", "event": "\\ud800"}')
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "event"
    assert nothing_written()


@pytest.mark.parametrize(
    "raw",
    [
        '{"email": "a@b.co", "event": "x", "data": {"k": 1e999}}',
        '{"email": "a@b.co", "event": "x", "data": {"k": NaN}}',
        '{"email": "a@b.co", "event": "x", "data": {"k": Infinity}}',
        '{"email": "a@b.co", "event": "x", "data": ' + "[" * 5000 + "]" * 5000 + "}",
    ],
    ids=["huge-number", "nan", "infinity", "deep-nesting"],
)
def test_json_no_column_can_hold_is_400(pk, raw):
    response = post_raw(pk, "/v1/track", raw)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid JSON in request body"
    assert nothing_written()


def test_a_bad_string_in_a_batch_is_reported_for_the_whole_body(pk):
    body = {"events": [{"email": "a@b.co", "event": "ok"}, {"email": "c@b.co", "event": "\u0000"}]}
    response = pk.post("/v1/track/batch", body, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "events.1.event"
    assert nothing_written()


@pytest.mark.parametrize(
    "path",
    [
        "/events?eventName=a%00b",
        "/events/a%00b/usage",
        "/contacts?search=a%00",
    ],
)
def test_nul_in_query_or_path_is_422(sk, path):
    response = sk.get(path)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_nul_in_a_delete_path_is_422(sk):
    assert sk.delete("/events/a%00b").status_code == 422


def test_nul_in_a_segment_condition_is_422(sk):
    condition = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "event.a\u0000", "operator": "triggered"}]}],
    }
    response = sk.post("/segments", {"name": "s", "condition": condition}, format="json")
    assert response.status_code == 422
    assert not Segment.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        "endDate=9999-12-31",
        "startDate=9999-12-31T23:59:59",
        "startDate=0001-01-01T00:00:00%2B14:00",
        "startDate=2024-02-30",
        "startDate=yesterday",
    ],
)
def test_dates_outside_the_calendar_are_422(sk, query):
    response = sk.get(f"/events/stats?{query}")
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["code"] == "invalid_date"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_cursors_at_the_ends_of_the_calendar_are_422(sk, stamp):
    import base64

    cursor = base64.urlsafe_b64encode(
        f"{stamp}|01a211ad-ca43-750d-8d93-b7e1f13787cd".encode()
    ).decode()
    response = sk.get(f"/events?cursor={cursor}")
    assert response.status_code == 422


def test_names_with_newlines_can_be_inspected_and_deleted(pk, sk):
    assert (
        pk.post("/v1/track", {"email": "a@b.co", "event": "a\nb"}, format="json").status_code == 200
    )
    usage = sk.get("/events/a%0Ab/usage")
    assert usage.status_code == 200 and usage.json()["totalCount"] == 1
    assert sk.delete("/events/a%0Ab").json() == {"deletedCount": 1}
    unknown = sk.get("/contacts/x/y%0Az")
    assert unknown.status_code == 404 and unknown.json()["success"] is False


def test_json_body_round_trips_unicode(pk, sk):
    raw = json.dumps({"email": "a@b.co", "event": "café ☕", "data": {"emoji": "🎉"}})
    assert post_raw(pk, "/v1/track", raw).status_code == 200
    assert sk.get("/events").json()["events"][0]["data"] == {"emoji": "🎉"}
