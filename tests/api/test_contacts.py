"""``/contacts``: upsert by email, data and subscription rules, PATCH, DELETE, cursor pages."""

from __future__ import annotations

import re
import uuid

import pytest

from plunk_events.models import Contact, Event

from .helpers import (
    assert_error,
    assert_field_errors,
    assert_not_found,
    assert_secret_key_required,
    assert_validation,
)

pytestmark = pytest.mark.django_db

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BAD_CURSOR = ("cursor", "invalid_string", "Invalid cursor: no such contact in this list")


def create(sk, **body):
    return sk.post("/contacts", body, format="json")


def event_names(sk) -> list[str]:
    return [e["name"] for e in sk.get("/events").json()["events"]]


# ---------------------------------------------------------------------------------------------
# Create or update


def test_create_returns_201_with_the_contact_and_meta(sk, project):
    response = create(sk, email="New@Example.com", data={"plan": "pro"})
    assert response.status_code == 201
    body = response.json()
    contact = Contact.objects.get(project=project)
    assert body == {
        "id": str(contact.id),
        "email": "new@example.com",
        "subscribed": True,
        "data": {"plan": "pro"},
        "createdAt": body["createdAt"],
        "updatedAt": body["updatedAt"],
        "_meta": {"isNew": True, "isUpdate": False},
    }
    assert ISO_MS.match(body["createdAt"]) and ISO_MS.match(body["updatedAt"])


def test_same_email_in_other_case_and_spaces_updates_with_200(sk, project):
    first = create(sk, email="ann@example.com", data={"a": 1}).json()
    response = create(sk, email="  ANN@Example.COM ", data={"b": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == first["id"]
    assert body["email"] == "ann@example.com"
    assert body["data"] == {"a": 1, "b": 2}
    assert body["_meta"] == {"isNew": False, "isUpdate": True}
    assert Contact.objects.filter(project=project).count() == 1


def test_create_new_contact_unsubscribed_records_no_event(sk):
    body = create(sk, email="u@example.com", subscribed=False).json()
    assert body["subscribed"] is False
    assert event_names(sk) == []


def test_data_rules_apply_on_create_and_update(sk):
    create(sk, email="d@example.com", data={"keep": "x", "drop": "y", "n": 1})
    body = create(
        sk,
        email="d@example.com",
        data={
            "drop": None,  # deletes
            "keep": "",  # ignored
            "email": "hijack@example.com",  # reserved
            "plunk_id": "nope",  # reserved
            "temp": {"value": "once", "persistent": False},  # stays off the contact
            "sticky": {"value": "on", "persistent": True},  # unwrapped
            "nested": {"a": 1},
        },
    ).json()
    assert body["data"] == {"keep": "x", "n": 1, "sticky": "on", "nested": {"a": 1}}
    assert body["email"] == "d@example.com"


def test_deleting_every_key_stores_null(sk):
    create(sk, email="z@example.com", data={"only": 1})
    assert create(sk, email="z@example.com", data={"only": None}).json()["data"] is None


def test_subscription_flip_through_create_records_system_events(sk):
    contact = create(sk, email="s@example.com").json()
    create(sk, email="s@example.com", subscribed=True)  # same value: nothing
    assert event_names(sk) == []
    create(sk, email="s@example.com", subscribed=False)
    create(sk, email="s@example.com", subscribed=True)
    events = sk.get("/events").json()["events"]
    assert [e["name"] for e in events] == ["contact.subscribed", "contact.unsubscribed"]
    assert {e["contactId"] for e in events} == {contact["id"]}
    assert all(e["data"] is None for e in events)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, [("email", "invalid_type", "Required", "undefined")]),
        ({"email": "nope"}, [("email", "invalid_string", "Invalid email")]),
        (
            {"email": "a@example.com", "subscribed": "yes"},
            [("subscribed", "invalid_type", "Expected boolean, received string", "string")],
        ),
        (
            {"email": "a@example.com", "data": [1]},
            [("data", "invalid_type", "Expected object, received array", "array")],
        ),
        (
            {"email": "a@example.com", "data": {"locale": 5}},
            [("data.locale", "invalid_type", "Expected string, received number", "number")],
        ),
    ],
)  # fmt: skip
def test_create_validation_errors(sk, project, body, errors):
    assert_field_errors(create(sk, **body), errors)
    assert not Contact.objects.filter(project=project).exists()


def test_body_must_be_an_object(sk):
    assert_field_errors(
        sk.post("/contacts", [1], format="json"),
        [("body", "invalid_type", "Expected object, received array", "array")],
    )


def test_malformed_json_is_400(sk):
    response = sk.post("/contacts", "{nope", content_type="application/json")
    assert_error(
        response,
        400,
        "VALIDATION_ERROR",
        "Invalid JSON in request body",
        suggestion="Ensure the request body is valid JSON and the Content-Type header is set "
        "to application/json.",
    )


# ---------------------------------------------------------------------------------------------
# Get, patch, delete


def test_get_one(sk):
    created = create(sk, email="g@example.com", data={"x": 1}).json()
    body = sk.get(f"/contacts/{created['id']}").json()
    created.pop("_meta")
    assert body == created


def test_patch_changes_email_data_and_subscription(sk):
    contact = create(sk, email="p@example.com", data={"a": 1, "b": 2}).json()
    response = sk.patch(
        f"/contacts/{contact['id']}",
        {
            "email": " P2@Example.com",
            "subscribed": False,
            "data": {
                "a": None,
                "b": "",
                "d": 4,
                "manageUrl": "https://x",
                "id": "forged",
                "once": {"value": 1, "persistent": False},
            },
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "p2@example.com"
    assert body["subscribed"] is False
    assert body["data"] == {"b": 2, "d": 4}
    assert body["id"] == contact["id"]
    assert body["createdAt"] == contact["createdAt"]
    assert "_meta" not in body
    assert event_names(sk) == ["contact.unsubscribed"]
    sk.patch(f"/contacts/{contact['id']}", {"subscribed": True}, format="json")
    assert event_names(sk) == ["contact.subscribed", "contact.unsubscribed"]


def test_patch_with_the_same_subscription_records_nothing(sk):
    contact = create(sk, email="same@example.com").json()
    response = sk.patch(f"/contacts/{contact['id']}", {"subscribed": True}, format="json")
    assert response.status_code == 200
    assert event_names(sk) == []


def test_patch_to_an_email_already_taken_is_409(sk, project):
    create(sk, email="taken@example.com")
    mine = create(sk, email="mine@example.com").json()
    response = sk.patch(f"/contacts/{mine['id']}", {"email": "TAKEN@example.com"}, format="json")
    assert_error(
        response,
        409,
        "CONFLICT",
        'A contact with email "taken@example.com" already exists',
        details={"email": "taken@example.com"},
    )
    assert Contact.objects.get(pk=mine["id"]).email == "mine@example.com"


def test_patch_validation_error_changes_nothing(sk):
    contact = create(sk, email="v@example.com", data={"a": 1}).json()
    response = sk.patch(
        f"/contacts/{contact['id']}", {"email": "bad", "data": {"a": 2}}, format="json"
    )
    assert_field_errors(response, [("email", "invalid_string", "Invalid email")])
    assert sk.get(f"/contacts/{contact['id']}").json()["data"] == {"a": 1}


def test_delete_removes_the_contact_and_its_events(sk, project):
    contact = create(sk, email="del@example.com").json()
    sk.post("/v1/track", {"email": "del@example.com", "event": "x"}, format="json")
    response = sk.delete(f"/contacts/{contact['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Contact.objects.filter(project=project).exists()
    assert not Event.objects.filter(project=project).exists()
    assert_not_found(sk.get(f"/contacts/{contact['id']}"), "Contact", contact["id"])


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_projects_contact_is_404(method, sk, other_project, client_for):
    other = client_for(other_project.secret_key)
    contact = create(other, email="theirs@example.com").json()
    response = getattr(sk, method)(f"/contacts/{contact['id']}", {}, format="json")
    assert_not_found(response, "Contact", contact["id"])
    assert other.get(f"/contacts/{contact['id']}").status_code == 200


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "cnt_abc123"])
def test_non_uuid_id_is_404(method, bad_id, sk):
    response = getattr(sk, method)(f"/contacts/{bad_id}", {}, format="json")
    assert_not_found(response, "Contact", bad_id)


def test_unknown_uuid_is_404(sk):
    missing = str(uuid.uuid4())
    assert_not_found(sk.get(f"/contacts/{missing}"), "Contact", missing)


def test_put_is_405_in_the_envelope(sk):
    contact = create(sk, email="put@example.com").json()
    response = sk.put(f"/contacts/{contact['id']}", {}, format="json")
    assert_error(response, 405, "METHOD_NOT_ALLOWED", 'Method "PUT" not allowed.')


# ---------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/contacts"),
        ("post", "/contacts"),
        ("get", "/contacts/{id}"),
        ("patch", "/contacts/{id}"),
        ("delete", "/contacts/{id}"),
    ],
)
def test_public_key_and_no_key_are_refused(method, path, sk, pk, client_for, project):
    contact = create(sk, email="k@example.com").json()
    url = path.format(id=contact["id"])
    assert_secret_key_required(getattr(pk, method)(url, {}, format="json"))
    response = getattr(client_for(None), method)(url, {}, format="json")
    assert_error(response, 401, "UNAUTHORIZED", "You need to be authenticated to do this")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert Contact.objects.get(project=project).email == "k@example.com"


# ---------------------------------------------------------------------------------------------
# List


def make_contacts(sk, n: int) -> list[dict]:
    return [create(sk, email=f"user{i:02d}@example.com").json() for i in range(n)]


def test_list_is_newest_first_with_total_on_the_first_page_only(sk):
    made = make_contacts(sk, 5)
    first = sk.get("/contacts", {"limit": 2}).json()
    assert [c["email"] for c in first["data"]] == ["user04@example.com", "user03@example.com"]
    assert first["hasMore"] is True
    assert first["total"] == 5
    assert first["cursor"] == first["data"][-1]["id"]
    assert set(first["data"][0]) == {"id", "email", "subscribed", "data", "createdAt", "updatedAt"}

    second = sk.get("/contacts", {"limit": 2, "cursor": first["cursor"]}).json()
    assert [c["email"] for c in second["data"]] == ["user02@example.com", "user01@example.com"]
    assert second["hasMore"] is True
    assert second["total"] == 0

    last = sk.get("/contacts", {"limit": 2, "cursor": second["cursor"]}).json()
    made[0].pop("_meta")
    assert last == {"data": [made[0]], "cursor": None, "hasMore": False, "total": 0}


def test_cursor_pages_visit_every_contact_once_for_each_order(sk):
    made = {c["email"] for c in make_contacts(sk, 7)}
    for sort in ("createdAt", "email"):
        for direction in ("asc", "desc"):
            seen, cursor = [], None
            while True:
                params = {"limit": 3, "sort": sort, "dir": direction}
                if cursor:
                    params["cursor"] = cursor
                page = sk.get("/contacts", params).json()
                seen += [c["email"] for c in page["data"]]
                cursor = page["cursor"]
                if not page["hasMore"]:
                    assert cursor is None
                    break
            assert set(seen) == made and len(seen) == len(made)
            if sort == "email":
                assert seen == sorted(made, reverse=direction == "desc")


def test_list_default_limit_20_and_cap_100(sk, project):
    Contact.objects.bulk_create(
        Contact(project=project, email=f"bulk{i:03d}@example.com") for i in range(105)
    )
    assert len(sk.get("/contacts").json()["data"]) == 20
    assert len(sk.get("/contacts", {"limit": 0}).json()["data"]) == 20
    assert len(sk.get("/contacts", {"limit": "abc"}).json()["data"]) == 20
    page = sk.get("/contacts", {"limit": 1000}).json()
    assert len(page["data"]) == 100
    assert page["total"] == 105
    assert page["hasMore"] is True


def test_list_search_and_subscribed_filters(sk):
    create(sk, email="alice@acme.io")
    create(sk, email="bob@acme.io", subscribed=False)
    create(sk, email="carol@other.io")
    emails = lambda **q: sorted(c["email"] for c in sk.get("/contacts", q).json()["data"])  # noqa: E731
    assert emails(search="ACME") == ["alice@acme.io", "bob@acme.io"]
    assert emails(subscribed="true") == ["alice@acme.io", "carol@other.io"]
    assert emails(subscribed="false") == ["bob@acme.io"]
    assert emails(search="acme", subscribed="true") == ["alice@acme.io"]
    assert sk.get("/contacts", {"search": "acme"}).json()["total"] == 2


def test_list_bad_filter_or_cursor_is_422(sk):
    assert_field_errors(
        sk.get("/contacts", {"subscribed": "maybe"}),
        [("subscribed", "invalid_type", "Expected true or false", "string")],
    )
    for cursor in ("garbage", str(uuid.uuid4())):
        assert_field_errors(sk.get("/contacts", {"cursor": cursor}), [BAD_CURSOR])


@pytest.mark.parametrize(
    ("params", "field", "expected"),
    [
        ({"sort": "name"}, "sort", "'createdAt' | 'email'"),
        ({"sort": "created_at"}, "sort", "'createdAt' | 'email'"),
        ({"dir": "descending"}, "dir", "'asc' | 'desc'"),
        ({"dir": "ASC"}, "dir", "'asc' | 'desc'"),
    ],
)
def test_list_unknown_sort_or_dir_is_422_not_the_default_order(sk, params, field, expected):
    make_contacts(sk, 2)
    response = sk.get("/contacts", params)
    value = next(iter(params.values()))
    assert_validation(
        response,
        [
            {
                "field": field,
                "message": f"Invalid enum value. Expected {expected}, received '{value}'",
                "code": "invalid_enum_value",
            }
        ],
    )


def test_list_both_bad_sort_and_dir_are_reported(sk):
    assert_field_errors(
        sk.get("/contacts", {"sort": "x", "dir": "y"}),
        [
            (
                "sort",
                "invalid_enum_value",
                "Invalid enum value. Expected 'createdAt' | 'email', received 'x'",
            ),
            (
                "dir",
                "invalid_enum_value",
                "Invalid enum value. Expected 'asc' | 'desc', received 'y'",
            ),
        ],
    )


def test_list_empty_sort_and_dir_mean_the_default_order(sk):
    make_contacts(sk, 3)
    default = [c["email"] for c in sk.get("/contacts").json()["data"]]
    assert default == ["user02@example.com", "user01@example.com", "user00@example.com"]
    emptied = sk.get("/contacts", {"sort": "", "dir": ""}).json()["data"]
    assert [c["email"] for c in emptied] == default


def test_list_shows_only_this_projects_contacts(sk, other_project, client_for):
    create(client_for(other_project.secret_key), email="theirs@example.com")
    create(sk, email="mine@example.com")
    page = sk.get("/contacts").json()
    assert [c["email"] for c in page["data"]] == ["mine@example.com"]
    assert page["total"] == 1


def test_another_projects_contact_id_is_not_a_cursor(sk, other_project, client_for):
    theirs = create(client_for(other_project.secret_key), email="theirs@example.com").json()
    response = sk.get("/contacts", {"cursor": theirs["id"]})
    assert_field_errors(response, [BAD_CURSOR])
