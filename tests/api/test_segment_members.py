"""``/segments/<id>/contacts``, ``/members``, ``/compute``, ``/refresh``: envelopes, STATIC-only
members, tracked-only compute, the page size cap, and nothing written on bad input."""

from __future__ import annotations

import uuid

import pytest

from plunk_events.models import Contact, Event, Segment, SegmentMembership

from .helpers import assert_error, assert_field_errors, assert_not_found, assert_secret_key_required

pytestmark = pytest.mark.django_db

PRO = {
    "logic": "AND",
    "groups": [{"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}],
}


def make(sk, **body):
    response = sk.post("/segments", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def static(sk):
    return make(sk, name="VIP", type="STATIC")


def test_add_list_and_remove_static_members(sk, project, static):
    Contact.objects.create(project=project, email="a@x.io")
    url = f"/segments/{static['id']}/members"
    response = sk.post(url, {"emails": [" A@x.io", "b@x.io"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"added": 1, "created": 0, "notFound": ["b@x.io"]}
    response = sk.post(url, {"emails": ["b@x.io"], "createMissing": True}, format="json")
    assert response.json() == {"added": 0, "created": 1, "notFound": []}
    assert sk.get(f"/segments/{static['id']}").json()["memberCount"] == 2

    listed = sk.get(f"/segments/{static['id']}/contacts").json()
    assert [c["email"] for c in listed["data"]] == ["b@x.io", "a@x.io"]  # newest entry first
    assert {k: listed[k] for k in ("total", "page", "pageSize", "totalPages")} == {
        "total": 2,
        "page": 1,
        "pageSize": 20,
        "totalPages": 1,
    }
    response = sk.delete(url, {"emails": ["A@X.IO", "nobody@x.io"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"removed": 1}
    assert sk.get(f"/segments/{static['id']}").json()["memberCount"] == 1


def test_page_size_is_capped_at_100(sk, project, static):
    Contact.objects.bulk_create(Contact(project=project, email=f"c{i}@x.io") for i in range(105))
    emails = [f"c{i}@x.io" for i in range(105)]
    added = sk.post(f"/segments/{static['id']}/members", {"emails": emails}, format="json")
    assert added.status_code == 200
    body = sk.get(f"/segments/{static['id']}/contacts?page=2&pageSize=500").json()
    assert (body["pageSize"], body["page"], len(body["data"]), body["totalPages"]) == (100, 2, 5, 2)
    assert sk.get(f"/segments/{static['id']}/contacts?pageSize=abc").json()["pageSize"] == 20


def test_live_contacts_of_an_untracked_dynamic_segment(sk, project):
    Contact.objects.create(project=project, email="a@x.io", data={"plan": "pro"})
    Contact.objects.create(project=project, email="b@x.io", data={"plan": "free"})
    segment = make(sk, name="Pro", condition=PRO)
    body = sk.get(f"/segments/{segment['id']}/contacts").json()
    assert [c["email"] for c in body["data"]] == ["a@x.io"]
    assert sk.post(f"/segments/{segment['id']}/refresh").json() == {"memberCount": 1}


def test_compute_of_a_tracked_segment(sk, project):
    Contact.objects.create(project=project, email="a@x.io", data={"plan": "pro"})
    segment = make(sk, name="Pro Users", condition=PRO, trackMembership=True)
    response = sk.post(f"/segments/{segment['id']}/compute")
    assert response.status_code == 200
    # The create computed it already (after its commit, with a worker; not inside a test's
    # transaction), so this compute found either one entry or none left to do.
    body = response.json()
    assert body["total"] == 1 and body["removed"] == 0
    assert Event.objects.filter(project=project, name="segment.pro-users.entry").count() == 1
    assert sk.post(f"/segments/{segment['id']}/compute").json() == {
        "added": 0,
        "removed": 0,
        "total": 1,
    }


def test_compute_of_an_untracked_segment_is_400(sk):
    segment = make(sk, name="Pro", condition=PRO)
    assert_error(
        sk.post(f"/segments/{segment['id']}/compute"),
        400,
        "BAD_REQUEST",
        "Membership tracking is not enabled for this segment",
    )


@pytest.mark.parametrize("method", ["post", "delete"])
def test_members_of_a_dynamic_segment_are_400_and_write_nothing(sk, project, method):
    segment = make(sk, name="Pro", condition=PRO)
    response = getattr(sk, method)(
        f"/segments/{segment['id']}/members",
        {"emails": ["new@x.io"], "createMissing": True},
        format="json",
    )
    assert_error(
        response,
        400,
        "BAD_REQUEST",
        "Members can only be added to or removed from STATIC segments",
    )
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, [("emails", "invalid_type", "Required")]),
        ({"emails": []}, [("emails", "too_small", "Ensure this field has at least 1 elements.")]),
        (
            {"emails": [1]},
            [("emails.0", "invalid_type", "Not a valid string.")],
        ),
        ({"emails": ["a@x.io"], "createMissing": "yes"}, None),
        (
            {"emails": ["x"] * 501},
            [("emails", "too_big", "Ensure this field has no more than 500 elements.")],
        ),
    ],
)
def test_bad_member_bodies_are_422_and_write_nothing(sk, static, body, errors):
    response = sk.post(f"/segments/{static['id']}/members", body, format="json")
    assert response.status_code == 422, response.content
    if errors is not None:
        assert_field_errors(response, errors)
    assert not Contact.objects.exists()
    assert not SegmentMembership.objects.exists()


def test_an_invalid_email_to_create_is_422_and_writes_nothing(sk, static):
    response = sk.post(
        f"/segments/{static['id']}/members",
        {"emails": ["ok@x.io", "not an email"], "createMissing": True},
        format="json",
    )
    assert_field_errors(response, [("emails.1", "invalid_string", "Invalid email")])
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", "contacts"),
        ("post", "members"),
        ("delete", "members"),
        ("post", "compute"),
        ("post", "refresh"),
    ],
)
def test_unknown_or_foreign_segment_is_404(sk, other_project, client_for, method, suffix):
    theirs = make(client_for(other_project.secret_key), name="Theirs", type="STATIC")
    for segment_id in (theirs["id"], str(uuid.uuid4()), "nope"):
        response = getattr(sk, method)(
            f"/segments/{segment_id}/{suffix}", {"emails": ["a@x.io"]}, format="json"
        )
        assert_not_found(response, "Segment", segment_id)


@pytest.mark.parametrize("suffix", ["contacts", "members", "compute", "refresh"])
def test_the_public_key_is_refused(pk, project, suffix):
    segment = Segment.objects.create(project=project, name="S", type="STATIC")
    assert_secret_key_required(pk.post(f"/segments/{segment.pk}/{suffix}"))
