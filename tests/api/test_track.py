"""``POST /v1/track``: validation, reserved names, email normalisation, the subscribed
matrix with its system events, the data rules, the response, atomicity and Idempotency-Key."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from plunk_events.models import Contact, Event, IdempotencyKey

from .helpers import (
    FIELD_ERRORS_SUGGESTION,
    TIMESTAMP,
    assert_error,
    assert_validation,
    counts,
    track,
)

pytestmark = pytest.mark.django_db

EMAIL = "user@example.com"


def ok(client, body, **headers) -> dict:
    response = track(client, body, **headers)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def contact(project, email=EMAIL) -> Contact:
    return Contact.objects.get(project=project, email=email)


def names_oldest_first(project) -> list[str]:
    return list(
        Event.objects.filter(project=project)
        .order_by("created_at", "id")
        .values_list("name", flat=True)
    )


# ---------------------------------------------------------------------------------------------
# Validation: each field wrong in turn


def required(field):
    return {"field": field, "message": "Required", "code": "invalid_type", "received": "undefined"}


def wrong_type(field, expected, received):
    return {
        "field": field,
        "message": f"Expected {expected}, received {received}",
        "code": "invalid_type",
        "received": received,
    }


VALID = {"email": EMAIL, "event": "signed_up"}

BAD_BODIES = [
    pytest.param({"event": "x"}, [required("email")], id="email-missing"),
    pytest.param(
        {**VALID, "email": None}, [wrong_type("email", "string", "null")], id="email-null"
    ),
    pytest.param(
        {**VALID, "email": 5}, [wrong_type("email", "string", "number")], id="email-number"
    ),
    pytest.param(
        {**VALID, "email": ["a@b.co"]}, [wrong_type("email", "string", "array")], id="email-array"
    ),
    pytest.param(
        {**VALID, "email": "not-an-email"},
        [{"field": "email", "message": "Invalid email", "code": "invalid_string"}],
        id="email-invalid",
    ),
    pytest.param(
        {**VALID, "email": ""},
        [{"field": "email", "message": "Invalid email", "code": "invalid_string"}],
        id="email-empty",
    ),
    pytest.param(
        {**VALID, "email": "a@b.co m"},
        [{"field": "email", "message": "Invalid email", "code": "invalid_string"}],
        id="email-inner-space",
    ),
    pytest.param(
        {**VALID, "email": "a" * 310 + "@example.com"},
        [
            {
                "field": "email",
                "message": "String must contain at most 320 character(s)",
                "code": "too_big",
            }
        ],
        id="email-too-long",
    ),
    pytest.param({"email": EMAIL}, [required("event")], id="event-missing"),
    pytest.param(
        {**VALID, "event": None}, [wrong_type("event", "string", "null")], id="event-null"
    ),
    pytest.param(
        {**VALID, "event": 7}, [wrong_type("event", "string", "number")], id="event-number"
    ),
    pytest.param(
        {**VALID, "event": {"a": 1}}, [wrong_type("event", "string", "object")], id="event-object"
    ),
    pytest.param(
        {**VALID, "event": ""},
        [
            {
                "field": "event",
                "message": "String must contain at least 1 character(s)",
                "code": "too_small",
            }
        ],
        id="event-empty",
    ),
    pytest.param(
        {**VALID, "event": "   "},
        [
            {
                "field": "event",
                "message": "String must contain at least 1 character(s)",
                "code": "too_small",
            }
        ],
        id="event-blank",
    ),
    pytest.param(
        {**VALID, "event": "x" * 256},
        [
            {
                "field": "event",
                "message": "String must contain at most 255 character(s)",
                "code": "too_big",
            }
        ],
        id="event-too-long",
    ),
    pytest.param(
        {**VALID, "subscribed": "yes"},
        [wrong_type("subscribed", "boolean", "string")],
        id="subscribed-string",
    ),
    pytest.param(
        {**VALID, "subscribed": None},
        [wrong_type("subscribed", "boolean", "null")],
        id="subscribed-null",
    ),
    pytest.param(
        {**VALID, "subscribed": 1}, [wrong_type("subscribed", "boolean", "number")], id="sub-1"
    ),
    pytest.param({**VALID, "data": [1]}, [wrong_type("data", "object", "array")], id="data-array"),
    pytest.param({**VALID, "data": "x"}, [wrong_type("data", "object", "string")], id="data-str"),
    pytest.param({**VALID, "data": 3}, [wrong_type("data", "object", "number")], id="data-number"),
    pytest.param(
        {**VALID, "data": {"locale": 5}},
        [wrong_type("data.locale", "string", "number")],
        id="locale-number",
    ),
    pytest.param(
        {**VALID, "data": {"locale": {"value": "de"}}},
        [wrong_type("data.locale", "string", "object")],
        id="locale-object",
    ),
    pytest.param(
        {**VALID, "data": {"locale": True}},
        [wrong_type("data.locale", "string", "boolean")],
        id="locale-bool",
    ),
    pytest.param({}, [required("email"), required("event")], id="empty-object"),
    pytest.param(
        {"email": 1, "event": "", "subscribed": "no", "data": []},
        [
            wrong_type("email", "string", "number"),
            {
                "field": "event",
                "message": "String must contain at least 1 character(s)",
                "code": "too_small",
            },
            wrong_type("subscribed", "boolean", "string"),
            wrong_type("data", "object", "array"),
        ],
        id="everything-wrong",
    ),
]


@pytest.mark.parametrize(("body", "errors"), BAD_BODIES)
def test_each_field_wrong_in_turn(pk, project, body, errors):
    assert_validation(track(pk, body), errors)
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    ("raw", "received"),
    [("[]", "array"), ('"x"', "string"), ("5", "number"), ("null", "null"), ("true", "boolean")],
)
def test_non_object_body(pk, raw, received):
    response = pk.post("/v1/track", raw, content_type="application/json")
    assert_validation(response, [wrong_type("body", "object", received)])
    assert counts() == (0, 0)


@pytest.mark.parametrize("raw", ["{", '{"email": "a@b.co",}', "not json", '{"a": 1}}'])
def test_malformed_json_is_400(pk, raw):
    response = pk.post("/v1/track", raw, content_type="application/json")
    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        "Invalid JSON in request body",
        suggestion="Ensure the request body is valid JSON and the Content-Type header is set "
        "to application/json.",
    )
    assert counts() == (0, 0)


def test_unknown_top_level_keys_are_ignored(pk, project):
    ok(pk, {**VALID, "extra": 1, "contactId": "x"})
    assert counts(project) == (1, 1)


def test_suggestion_without_type_errors(pk):
    response = track(pk, {**VALID, "email": "nope"})
    body = assert_validation(
        response, [{"field": "email", "message": "Invalid email", "code": "invalid_string"}]
    )
    assert body["error"]["suggestion"] == (
        "Please check the API documentation for the correct request format."
    )


# ---------------------------------------------------------------------------------------------
# Reserved names

RESERVED = [
    "email.sent",
    "email.delivery",
    "email.open",
    "email.click",
    "email.bounce",
    "email.complaint",
    "email.received",
    "email.anything",
    "email.",
    "contact.subscribed",
    "contact.unsubscribed",
    "segment.entry",
    "segment.exit",
    "segment.vip.entry",
    "segment.vip-users.exit",
    "segment.a.b.exit",
    "segment..entry",
]


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_names_are_refused(pk, project, name):
    response = track(pk, {**VALID, "event": name})
    errors = [
        {
            "field": "event",
            "message": f'Event name "{name}" is reserved for system use and cannot be manually tracked',
            "code": "reserved_event",
            "received": name,
        }
    ]
    assert_error(
        response,
        422,
        "VALIDATION_ERROR",
        "Cannot track reserved system event",
        errors=errors,
        details={"errors": errors},
        suggestion=FIELD_ERRORS_SUGGESTION,
    )
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    "name",
    [
        "Email.sent",
        "EMAIL.open",
        "emails.sent",
        "email",
        "contact.created",
        "contact.Subscribed",
        "contact.subscribed.twice",
        "contact",
        "segment.foo",
        "segment.foo.Entry",
        "segment.entry.x",
        "segment",
        "Segment.vip.entry",
        "my.email.sent",
        " email.sent",
    ],
)
def test_names_that_only_look_reserved_are_tracked_verbatim(pk, project, name):
    data = ok(pk, {**VALID, "event": name})
    assert Event.objects.get(pk=data["event"]).name == name


def test_event_name_is_stored_verbatim(pk, project):
    name = "  Order Completed / Ünïcode ☕  "
    data = ok(pk, {**VALID, "event": name})
    assert Event.objects.get(pk=data["event"]).name == name


def test_event_name_of_255_characters_is_accepted(pk, project):
    ok(pk, {**VALID, "event": "x" * 255})
    assert Event.objects.get(project=project).name == "x" * 255


# ---------------------------------------------------------------------------------------------
# Email normalisation and the response


def test_email_is_trimmed_and_lowercased_into_one_contact(pk, project):
    first = ok(pk, {**VALID, "email": "  Alice@Example.COM "})
    second = ok(pk, {**VALID, "email": "alice@example.com"})
    third = ok(pk, {**VALID, "email": "ALICE@EXAMPLE.COM"})
    assert first["contact"] == second["contact"] == third["contact"]
    assert list(Contact.objects.values_list("email", flat=True)) == ["alice@example.com"]
    assert counts(project) == (1, 3)


def test_response_shape(pk, project):
    response = track(pk, {**VALID, "data": {"plan": "pro"}})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "data"}
    assert body["success"] is True
    assert set(body["data"]) == {"contact", "event", "timestamp"}
    event = Event.objects.get(project=project)
    assert body["data"]["contact"] == str(contact(project).id) == str(event.contact_id)
    assert body["data"]["event"] == str(event.id)
    assert str(uuid.UUID(body["data"]["event"])) == body["data"]["event"]
    assert TIMESTAMP.match(body["data"]["timestamp"])
    stamp = datetime.fromisoformat(body["data"]["timestamp"])
    assert stamp == event.created_at.replace(
        microsecond=event.created_at.microsecond // 1000 * 1000
    )
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert response["X-Request-ID"]


def test_every_call_records_a_new_event(pk, project):
    ids = {ok(pk, VALID)["event"] for _ in range(3)}
    assert len(ids) == 3
    assert counts(project) == (1, 3)


def test_event_belongs_to_the_project_and_contact(pk, project, other_project, client_for):
    mine = ok(pk, VALID)
    theirs = ok(client_for(other_project.public_key), VALID)
    assert mine["contact"] != theirs["contact"]
    assert Contact.objects.get(pk=theirs["contact"]).project == other_project
    assert Event.objects.get(pk=theirs["event"]).project == other_project


# ---------------------------------------------------------------------------------------------
# Subscribed matrix


@pytest.mark.parametrize(("sent", "expected"), [(None, True), (True, True), (False, False)])
def test_new_contact_subscription_and_no_system_event(pk, project, sent, expected):
    body = dict(VALID) if sent is None else {**VALID, "subscribed": sent}
    ok(pk, body)
    assert contact(project).subscribed is expected
    assert names_oldest_first(project) == ["signed_up"]


@pytest.mark.parametrize(
    ("before", "sent", "after", "system_event"),
    [
        (True, None, True, None),
        (True, True, True, None),
        (True, False, False, "contact.unsubscribed"),
        (False, None, False, None),
        (False, False, False, None),
        (False, True, True, "contact.subscribed"),
    ],
)
def test_existing_contact_subscription(pk, sk, project, before, sent, after, system_event):
    ok(pk, {**VALID, "event": "first", "subscribed": before})
    body = {**VALID, "event": "second"}
    if sent is not None:
        body["subscribed"] = sent
    data = ok(pk, body)
    assert contact(project).subscribed is after
    expected = ["first", *([system_event] if system_event else []), "second"]
    assert names_oldest_first(project) == expected
    # GET /events lists newest first: the system event sits right below the tracked one.
    listed = sk.get("/events").json()["events"]
    assert [e["name"] for e in listed] == expected[::-1]
    assert listed[0]["id"] == data["event"]
    if system_event:
        system = listed[1]
        assert system["contactId"] == data["contact"]
        assert system["data"] is None
        assert system["contact"] == {"email": EMAIL}


def test_flip_back_and_forth_emits_one_event_per_change(pk, project):
    for subscribed in (False, False, True, True, False):
        ok(pk, {**VALID, "subscribed": subscribed})
    assert names_oldest_first(project) == [
        "signed_up",  # new contact: subscribed False, no system event
        "signed_up",
        "contact.subscribed",
        "signed_up",
        "signed_up",
        "contact.unsubscribed",
        "signed_up",
    ]


# ---------------------------------------------------------------------------------------------
# Data rules

RESERVED_KEYS = [
    "id",
    "email",
    "plunk_id",
    "plunk_email",
    "unsubscribeUrl",
    "subscribeUrl",
    "manageUrl",
]


def test_reserved_data_keys_stay_off_the_contact_but_in_the_event(pk, project):
    data = {key: f"v-{key}" for key in RESERVED_KEYS} | {"plan": "pro"}
    result = ok(pk, {**VALID, "data": data})
    assert contact(project).data == {"plan": "pro"}
    assert Event.objects.get(pk=result["event"]).data == data


def test_system_attribute_names_are_ordinary_keys(pk, project):
    """SRC filters only the seven reserved keys; createdAt/subscribed are plain data."""
    ok(pk, {**VALID, "data": {"createdAt": "x", "subscribed": "y"}})
    assert contact(project).data == {"createdAt": "x", "subscribed": "y"}
    assert contact(project).subscribed is True


def test_empty_string_is_ignored(pk, project):
    ok(pk, {**VALID, "data": {"plan": "pro", "nick": ""}})
    assert contact(project).data == {"plan": "pro"}
    result = ok(pk, {**VALID, "data": {"plan": ""}})
    assert contact(project).data == {"plan": "pro"}
    assert Event.objects.get(pk=result["event"]).data == {"plan": ""}


def test_null_deletes_a_key(pk, project):
    ok(pk, {**VALID, "data": {"plan": "pro", "seats": 3}})
    result = ok(pk, {**VALID, "data": {"plan": None, "unknown": None}})
    assert contact(project).data == {"seats": 3}
    assert Event.objects.get(pk=result["event"]).data == {"plan": None, "unknown": None}
    ok(pk, {**VALID, "data": {"seats": None}})
    assert contact(project).data is None


def test_non_persistent_value_is_kept_off_the_contact_and_stored_in_the_event(pk, project):
    sent = {"plan": "pro", "orderId": {"value": "ord_123", "persistent": False}}
    result = ok(pk, {**VALID, "data": sent})
    assert contact(project).data == {"plan": "pro"}
    assert Event.objects.get(pk=result["event"]).data == sent


def test_non_persistent_value_does_not_touch_an_existing_key(pk, project):
    ok(pk, {**VALID, "data": {"orderId": "kept"}})
    ok(pk, {**VALID, "data": {"orderId": {"value": "once", "persistent": False}}})
    assert contact(project).data == {"orderId": "kept"}


def test_persistent_true_is_unwrapped(pk, project):
    sent = {"tier": {"value": "gold", "persistent": True}}
    result = ok(pk, {**VALID, "data": sent})
    assert contact(project).data == {"tier": "gold"}
    assert Event.objects.get(pk=result["event"]).data == sent


def test_persistent_must_be_a_strict_boolean(pk, project):
    """Only ``persistent: false`` (the boolean) keeps a value off the contact."""
    wrapped = {"value": "x", "persistent": "false"}
    ok(pk, {**VALID, "data": {"w": wrapped, "plain": {"value": "y"}}})
    assert contact(project).data == {"w": wrapped, "plain": {"value": "y"}}


def test_shallow_merge_replaces_nested_objects(pk, project):
    ok(pk, {**VALID, "data": {"address": {"city": "Oslo", "zip": "0150"}, "tags": ["a", "b"]}})
    ok(pk, {**VALID, "data": {"address": {"city": "Bergen"}, "tags": ["c"], "age": 30}})
    assert contact(project).data == {"address": {"city": "Bergen"}, "tags": ["c"], "age": 30}


def test_values_of_every_json_type_are_stored(pk, project):
    sent = {"s": "x", "i": 1, "f": 1.5, "t": True, "f0": False, "zero": 0, "l": [1], "o": {"a": 1}}
    ok(pk, {**VALID, "data": sent})
    assert contact(project).data == sent


@pytest.mark.parametrize("locale", ["de", "pt-BR", None, ""])
def test_locale_string_null_or_empty_is_accepted(pk, project, locale):
    ok(pk, {**VALID, "data": {"locale": "en"}})
    ok(pk, {**VALID, "data": {"locale": locale}})
    expected = {"en": {"locale": "en"}, None: None, "": {"locale": "en"}}
    assert contact(project).data == expected.get(locale, {"locale": locale})


def test_locale_error_writes_nothing_for_an_existing_contact(pk, project):
    ok(pk, {**VALID, "data": {"locale": "en"}})
    response = track(pk, {**VALID, "data": {"locale": 5, "plan": "pro"}})
    assert_validation(response, [wrong_type("data.locale", "string", "number")])
    assert contact(project).data == {"locale": "en"}
    assert counts(project) == (1, 1)


@pytest.mark.parametrize(
    "data", [None, {}, {"a": ""}, {"a": None}, {"a": {"value": 1, "persistent": False}}]
)
def test_contact_data_is_null_when_empty(pk, project, data):
    body = dict(VALID) if data is None else {**VALID, "data": data}
    result = ok(pk, body)
    assert contact(project).data is None
    assert Event.objects.get(pk=result["event"]).data == data


def test_data_null_behaves_like_omitted(pk, project):
    ok(pk, {**VALID, "data": {"plan": "pro"}})
    result = ok(pk, {**VALID, "data": None})
    assert contact(project).data == {"plan": "pro"}
    assert Event.objects.get(pk=result["event"]).data is None


# ---------------------------------------------------------------------------------------------
# A rejected request writes nothing


@pytest.mark.parametrize(
    "body",
    [
        {**VALID, "email": "bad"},
        {**VALID, "event": "email.open"},
        {**VALID, "subscribed": False, "data": {"locale": 1}},
        {**VALID, "subscribed": False, "event": "contact.unsubscribed"},
    ],
)
def test_rejected_request_changes_nothing_for_an_existing_contact(pk, project, body):
    ok(pk, {**VALID, "data": {"plan": "pro"}})
    before = contact(project)
    response = track(pk, body)
    assert response.status_code == 422
    after = contact(project)
    assert (after.data, after.subscribed, after.updated_at) == (
        before.data,
        before.subscribed,
        before.updated_at,
    )
    assert counts() == (1, 1)


# ---------------------------------------------------------------------------------------------
# Idempotency-Key


def test_reused_key_is_409_with_the_original_request(pk, project):
    first = track(pk, VALID, HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == 200
    claim = IdempotencyKey.objects.get(project=project, key="order-1")
    second = track(pk, {**VALID, "event": "other"}, HTTP_IDEMPOTENCY_KEY="order-1")
    body = assert_error(
        second,
        409,
        "IDEMPOTENCY_KEY_REUSED",
        'Idempotency-Key "order-1" has already been used',
        details={
            "key": "order-1",
            "originalRequest": "POST /v1/track",
            "originalRequestAt": second.json()["error"]["details"]["originalRequestAt"],
            "originalStatusCode": 200,
        },
    )
    at = body["error"]["details"]["originalRequestAt"]
    assert TIMESTAMP.match(at)
    assert datetime.fromisoformat(at) == claim.created_at.replace(
        microsecond=claim.created_at.microsecond // 1000 * 1000
    )
    assert counts(project) == (1, 1)


def test_reuse_is_refused_before_the_body_is_validated(pk, project):
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="k").status_code == 200
    response = track(pk, {"email": "bad"}, HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_keys_are_per_project(pk, project, other_project, client_for):
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="shared").status_code == 200
    other = client_for(other_project.public_key)
    assert track(other, VALID, HTTP_IDEMPOTENCY_KEY="shared").status_code == 200
    assert track(other, VALID, HTTP_IDEMPOTENCY_KEY="shared").status_code == 409
    assert counts(project) == (1, 1)
    assert counts(other_project) == (1, 1)


def test_keys_are_case_sensitive(pk, project):
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="Key").status_code == 200
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="key").status_code == 200
    assert counts(project) == (1, 2)


@pytest.mark.parametrize(
    "bad",
    [{**VALID, "email": "nope"}, {**VALID, "event": "email.sent"}, {"event": 1}],
    ids=["invalid-email", "reserved", "invalid-types"],
)
def test_a_4xx_releases_the_key(pk, project, bad):
    assert track(pk, bad, HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 422
    assert not IdempotencyKey.objects.filter(key="retry-me").exists()
    assert counts() == (0, 0)
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 200
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 409
    assert counts(project) == (1, 1)


def test_malformed_json_releases_the_key(pk, project):
    response = pk.post(
        "/v1/track", "{", content_type="application/json", HTTP_IDEMPOTENCY_KEY="json"
    )
    assert response.status_code == 400
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="json").status_code == 200


@pytest.mark.parametrize(
    "value",
    ["", "x" * 256, "tab\there", "bell\x07", "caf\u00e9", "new\nline", "\x7f"],
    ids=["empty", "256-chars", "tab", "control", "non-ascii", "newline", "del"],
)
def test_bad_key_header_is_400(pk, project, value):
    response = track(pk, VALID, HTTP_IDEMPOTENCY_KEY=value)
    assert_error(
        response,
        400,
        "BAD_REQUEST",
        "Idempotency-Key must be 1-255 printable ASCII characters",
    )
    assert counts() == (0, 0)
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize(
    "value", ["x" * 255, " ", "a b~!@#$%^&*()", "550e8400-e29b-41d4-a716-446655440000"]
)
def test_good_key_header_is_accepted(pk, project, value):
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY=value).status_code == 200
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY=value).status_code == 409
    assert counts(project) == (1, 1)


def test_without_the_header_every_call_is_a_new_event(pk, project):
    for _ in range(3):
        assert track(pk, VALID).status_code == 200
    assert counts(project) == (1, 3)
    assert not IdempotencyKey.objects.exists()


@override_settings(PLUNK_EVENTS={"IDEMPOTENCY_KEY_TTL_HOURS": 0})
def test_an_expired_key_can_be_used_again(pk, project):
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="short").status_code == 200
    assert track(pk, VALID, HTTP_IDEMPOTENCY_KEY="short").status_code == 200
    assert counts(project) == (1, 2)
    assert IdempotencyKey.objects.filter(key="short").count() == 1


# ---------------------------------------------------------------------------------------------
# The hot path stays small


def test_track_query_count(pk, project, django_assert_max_num_queries):
    ok(pk, VALID)  # warm up: the contact now exists
    # Key lookup, upsert, contact update, event insert (+ savepoints inside the test transaction).
    with django_assert_max_num_queries(6):
        ok(pk, {**VALID, "data": {"plan": "pro"}})
    with django_assert_max_num_queries(6):
        ok(pk, {**VALID, "email": "new@example.com", "data": {"plan": "pro"}})
    # A subscription flip adds its system event to the same INSERT.
    with django_assert_max_num_queries(6):
        ok(pk, {**VALID, "subscribed": False})
    # An Idempotency-Key adds its look-up and its claim.
    with django_assert_max_num_queries(8):
        ok(pk, VALID, HTTP_IDEMPOTENCY_KEY="k")
    assert counts(project) == (2, 6)


def test_body_over_the_track_limit_is_413_and_writes_nothing(pk):
    raw = json.dumps({"email": "big@b.co", "event": "x", "data": {"pad": "x" * (1024 * 1024)}})
    response = pk.post("/v1/track", raw, content_type="application/json")
    assert response.status_code == 413
    body = response.json()
    assert body["error"]["code"] == "BAD_REQUEST"
    assert (
        body["error"]["message"] == f"Request body is {len(raw)} bytes; the limit is {1024 * 1024}"
    )
    assert not Contact.objects.exists() and not Event.objects.exists()


@pytest.mark.parametrize("path", ["/v1/track", "/v1/track/batch"])
def test_cors_preflight_needs_no_key_and_any_origin_may_post(path, client_for, pk):
    preflight = client_for(None).options(
        path, HTTP_ORIGIN="https://shop.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert not Event.objects.exists()
    tracked = pk.post("/v1/track", {"email": "c@b.co", "event": "x"}, format="json")
    assert tracked["Access-Control-Allow-Origin"] == "*"
    refused = client_for(None).post("/v1/track", {"email": "c@b.co", "event": "x"}, format="json")
    assert refused.status_code == 401
    assert refused["Access-Control-Allow-Origin"] == "*"
