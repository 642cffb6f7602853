"""``/templates``: CRUD, pages, filters, validation (nothing written on a 4xx), other projects'
ids, the secret key, and the delete guard of templates named by SEND_EMAIL steps."""

from __future__ import annotations

import uuid

import pytest

from plunk_events.models import Contact, Email, Template, WorkflowStep
from plunk_events.services import templates

from .helpers import (
    TIMESTAMP,
    assert_error,
    assert_field_errors,
    assert_not_found,
    assert_secret_key_required,
)

pytestmark = pytest.mark.django_db

RESET = {
    "name": "Password reset",
    "subject": "Reset your password",
    "body": "<h1>Hi {{firstName}}</h1><p>Use this code: {{resetCode}}</p>",
    "from": "hello@example.com",
}


def create(client, **fields):
    return client.post("/templates", {**RESET, **fields}, format="json")


def make(client, **fields) -> dict:
    response = create(client, **fields)
    assert response.status_code == 201, response.content
    return response.json()


# ---------------------------------------------------------------------------------------------
# Create and read


def test_create_returns_201_with_the_template(sk, project):
    response = create(
        sk,
        description="Sent on request",
        fromName="My App",
        replyTo="support@example.com",
        type="TRANSACTIONAL",
        bodyFormat="MARKDOWN",
    )
    assert response.status_code == 201
    body = response.json()
    template = Template.objects.get(project=project)
    assert body == {
        "id": str(template.id),
        "name": "Password reset",
        "description": "Sent on request",
        "subject": "Reset your password",
        "body": RESET["body"],
        "type": "TRANSACTIONAL",
        "bodyFormat": "MARKDOWN",
        "from": "hello@example.com",
        "fromName": "My App",
        "replyTo": "support@example.com",
        "projectId": str(project.id),
        "createdAt": body["createdAt"],
        "updatedAt": body["updatedAt"],
    }
    assert TIMESTAMP.match(body["createdAt"]) and TIMESTAMP.match(body["updatedAt"])
    assert (template.from_email, template.reply_to, template.body_format) == (
        "hello@example.com",
        "support@example.com",
        "MARKDOWN",
    )


def test_defaults_and_normalisation(sk):
    body = make(sk, **{"from": "  Hello@Example.com ", "replyTo": "", "fromName": " "})
    assert (body["type"], body["bodyFormat"]) == ("MARKETING", "HTML")
    assert (body["description"], body["fromName"], body["replyTo"]) == (None, None, None)
    # Trimmed, its case kept: it is a sender address, not a contact key.
    assert body["from"] == "Hello@Example.com"


def test_the_body_is_kept_verbatim(sk):
    text = "  # Hi {{name}}\n\n* one\n* two\n"
    assert make(sk, body=text, bodyFormat="MARKDOWN")["body"] == text


def test_limits_that_are_allowed(sk):
    body = make(sk, name="n" * 100, subject="s" * 998, description="d" * 500, fromName="f" * 100)
    assert (len(body["name"]), len(body["subject"])) == (100, 998)


def test_get_one(sk):
    created = make(sk)
    assert sk.get(f"/templates/{created['id']}").json() == created


REQUIRED = ("invalid_type", "Required")


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"from": None}, [("from", "invalid_type", "This field may not be null.")]),
        ({"from": ""}, [("from", "too_small", "This field may not be blank.")]),
        ({"from": "hello"}, [("from", "invalid_string", "Invalid email")]),
        ({"from": "My App <hello@example.com>"}, [("from", "invalid_string", "Invalid email")]),
        ({"from": 5}, [("from", "invalid_type", "Not a valid string.")]),
        ({"replyTo": "nope@"}, [("replyTo", "invalid_string", "Invalid email")]),
        ({"subject": "Hi\r\nBcc: all@example.com"}, [("subject", "invalid_string", "Must not contain line breaks (CR or LF)")]),
        ({"subject": "Hi\nthere"}, [("subject", "invalid_string", "Must not contain line breaks (CR or LF)")]),
        ({"subject": "s" * 999}, [("subject", "too_big", "Ensure this field has no more than 998 characters.")]),
        ({"fromName": "Evil\nBcc: x@example.com"}, [("fromName", "invalid_string", "Must not contain line breaks (CR or LF)")]),
        ({"fromName": "Evil\x0bBcc: x@example.com"}, [("fromName", "invalid_string", "Must not contain line breaks (CR or LF)")]),
        ({"subject": "Hi\u2028there"}, [("subject", "invalid_string", "Must not contain line breaks (CR or LF)")]),
        ({"fromName": "f" * 101}, [("fromName", "too_big", "Ensure this field has no more than 100 characters.")]),
        ({"name": ""}, [("name", "too_small", "This field may not be blank.")]),
        ({"name": "n" * 101}, [("name", "too_big", "Ensure this field has no more than 100 characters.")]),
        ({"description": "d" * 501}, [("description", "too_big", "Ensure this field has no more than 500 characters.")]),
        ({"body": ""}, [("body", "too_small", "This field may not be blank.")]),
        ({"body": ["<p>"]}, [("body", "invalid_type", "Not a valid string.")]),
        ({"type": "NEWSLETTER"}, [("type", "invalid_enum_value", '"NEWSLETTER" is not a valid choice.')]),
        ({"bodyFormat": "MJML"}, [("bodyFormat", "invalid_enum_value", '"MJML" is not a valid choice.')]),
        # Both email fields reported together.
        ({"from": "a", "replyTo": "b"}, [("from", "invalid_string", "Invalid email"), ("replyTo", "invalid_string", "Invalid email")]),
    ],
)  # fmt: skip
def test_create_validation_errors_write_nothing(sk, project, fields, errors):
    assert_field_errors(create(sk, **fields), errors)
    assert not Template.objects.filter(project=project).exists()


@pytest.mark.parametrize("missing", ["name", "subject", "body", "from"])
def test_required_fields(sk, project, missing):
    body = {k: v for k, v in RESET.items() if k != missing}
    response = sk.post("/templates", body, format="json")
    assert_field_errors(response, [(missing, *REQUIRED)])
    assert not Template.objects.filter(project=project).exists()


def test_a_body_that_is_not_an_object_is_422(sk, project):
    response = sk.post("/templates", [RESET], format="json")
    assert_field_errors(
        response, [("body", "invalid_type", "Expected object, received array", "array")]
    )
    assert not Template.objects.exists()


# ---------------------------------------------------------------------------------------------
# List: pages, filters, search, sort


def test_list_pages_newest_first(sk, other_project, client_for):
    make(client_for(other_project.secret_key), name="theirs")
    for i in range(5):
        make(sk, name=f"t{i}")
    page = sk.get("/templates", {"page": 1, "pageSize": 2}).json()
    assert set(page) == {"data", "total", "page", "pageSize", "totalPages"}
    assert [t["name"] for t in page["data"]] == ["t4", "t3"]
    assert (page["total"], page["page"], page["pageSize"], page["totalPages"]) == (5, 1, 2, 3)
    assert [t["name"] for t in sk.get("/templates", {"page": 3, "pageSize": 2}).json()["data"]] == [
        "t0"
    ]
    beyond = sk.get("/templates", {"page": 9, "pageSize": 2}).json()
    assert beyond == {"data": [], "total": 5, "page": 9, "pageSize": 2, "totalPages": 3}


def test_list_defaults_and_caps(sk, project):
    Template.objects.bulk_create(
        Template(project=project, name=f"b{i}", subject="s", body="b", from_email="a@b.co")
        for i in range(101)
    )
    page = sk.get("/templates").json()
    assert (len(page["data"]), page["page"], page["pageSize"], page["totalPages"]) == (20, 1, 20, 6)
    page = sk.get("/templates", {"page": "x", "pageSize": 500}).json()
    assert (len(page["data"]), page["pageSize"], page["totalPages"]) == (100, 100, 2)


def test_empty_list(sk):
    assert sk.get("/templates").json() == {
        "data": [], "total": 0, "page": 1, "pageSize": 20, "totalPages": 0,
    }  # fmt: skip


def test_filter_by_type(sk):
    make(sk, name="m")
    make(sk, name="t", type="TRANSACTIONAL")
    make(sk, name="h", type="HEADLESS")
    listed = sk.get("/templates", {"type": "TRANSACTIONAL"}).json()
    assert ([t["name"] for t in listed["data"]], listed["total"]) == (["t"], 1)
    assert [t["name"] for t in sk.get("/templates", {"type": ""}).json()["data"]] == ["h", "t", "m"]


def test_search_name_description_or_subject_case_insensitively(sk):
    make(sk, name="Welcome", subject="Hello")
    make(sk, name="Invoice", description="Monthly WELCOME pack", subject="Your bill")
    make(sk, name="Reset", subject="Welcome back, reset here")
    make(sk, name="Other", subject="Nothing")
    found = sk.get("/templates", {"search": "welcome"}).json()
    assert [t["name"] for t in found["data"]] == ["Reset", "Invoice", "Welcome"]
    assert found["total"] == 3
    assert sk.get("/templates", {"search": "zzz"}).json()["total"] == 0


def test_sort_and_direction(sk, project):
    for name in ("beta", "alpha", "gamma"):
        make(sk, name=name)
    by_name = sk.get("/templates", {"sort": "name", "dir": "asc"}).json()
    assert [t["name"] for t in by_name["data"]] == ["alpha", "beta", "gamma"]
    oldest = sk.get("/templates", {"dir": "asc"}).json()
    assert [t["name"] for t in oldest["data"]] == ["beta", "alpha", "gamma"]
    beta = Template.objects.get(project=project, name="beta")
    sk.patch(f"/templates/{beta.id}", {"subject": "changed"}, format="json")
    recent = sk.get("/templates", {"sort": "updatedAt"}).json()
    assert recent["data"][0]["name"] == "beta"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"type": "marketing"}, "type", "Invalid enum value. Expected 'MARKETING' | 'TRANSACTIONAL' | 'HEADLESS', received 'marketing'"),
        ({"sort": "subject"}, "sort", "Invalid enum value. Expected 'createdAt' | 'updatedAt' | 'name', received 'subject'"),
        ({"dir": "up"}, "dir", "Invalid enum value. Expected 'asc' | 'desc', received 'up'"),
    ],
)  # fmt: skip
def test_bad_filter_values_are_422(sk, params, field, message):
    make(sk)
    assert_field_errors(sk.get("/templates", params), [(field, "invalid_enum_value", message)])


# ---------------------------------------------------------------------------------------------
# Patch and delete


def test_patch_changes_only_what_is_sent(sk):
    created = make(sk, replyTo="support@example.com", fromName="My App", description="d")
    url = f"/templates/{created['id']}"
    body = sk.patch(
        url, {"subject": "New subject", "type": "HEADLESS", "bodyFormat": "MARKDOWN"}, format="json"
    ).json()
    assert body == {
        **created,
        "subject": "New subject",
        "type": "HEADLESS",
        "bodyFormat": "MARKDOWN",
        "updatedAt": body["updatedAt"],
    }
    assert body["updatedAt"] >= created["updatedAt"]
    cleared = sk.patch(
        url, {"replyTo": None, "fromName": "", "description": None}, format="json"
    ).json()
    assert (cleared["replyTo"], cleared["fromName"], cleared["description"]) == (None, None, None)
    assert sk.get(url).json() == cleared


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"from": ""}, [("from", "too_small", "This field may not be blank.")]),
        ({"from": None}, [("from", "invalid_type", "This field may not be null.")]),
        ({"name": "ok", "replyTo": "not-an-address"}, [("replyTo", "invalid_string", "Invalid email")]),
        ({"subject": "two\nlines", "name": "ok"}, [("subject", "invalid_string", "Must not contain line breaks (CR or LF)")]),
        ({"subject": None}, [("subject", "invalid_type", "This field may not be null.")]),
    ],
)  # fmt: skip
def test_patch_validation_errors_change_nothing(sk, project, fields, errors):
    created = make(sk)
    url = f"/templates/{created['id']}"
    assert_field_errors(sk.patch(url, fields, format="json"), errors)
    assert sk.get(url).json() == created


def test_delete_keeps_the_emails_sent_with_it(sk, project):
    created = make(sk)
    contact = Contact.objects.create(project=project, email="ann@example.com")
    email = Email.objects.create(
        project=project,
        contact=contact,
        template_id=created["id"],
        source=Email.Source.TRANSACTIONAL,
        to_email=contact.email,
        from_email="hello@example.com",
        subject="Reset your password",
        body="<p>1234</p>",
    )
    response = sk.delete(f"/templates/{created['id']}")
    assert response.status_code == 204
    assert not Template.objects.filter(project=project).exists()
    email.refresh_from_db()
    assert (email.template_id, email.subject) == (None, "Reset your password")
    assert_not_found(sk.get(f"/templates/{created['id']}"), "Template", created["id"])


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_projects_template_is_404(method, sk, other_project, client_for):
    other = client_for(other_project.secret_key)
    theirs = make(other, name="theirs")
    response = getattr(sk, method)(f"/templates/{theirs['id']}", {"name": "x"}, format="json")
    assert_not_found(response, "Template", theirs["id"])
    assert other.get(f"/templates/{theirs['id']}").json() == theirs


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("bad_id", ["tpl_1", "12", str(uuid.UUID(int=7))])
def test_non_uuid_or_unknown_id_is_404(method, bad_id, sk):
    response = getattr(sk, method)(f"/templates/{bad_id}", {}, format="json")
    assert_not_found(response, "Template", bad_id)


def test_unknown_routes_below_templates_are_404_in_the_envelope(sk):
    created = make(sk)
    response = sk.get(f"/templates/{created['id']}/preview")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("post", ""), ("get", "/{id}"), ("patch", "/{id}"), ("delete", "/{id}")],
)
def test_public_key_is_refused(method, path, sk, pk, project):
    created = make(sk)
    url = "/templates" + path.format(id=created["id"])
    response = getattr(pk, method)(url, {**RESET, "name": "x"}, format="json")
    assert_secret_key_required(response)
    assert list(Template.objects.filter(project=project).values_list("name", flat=True)) == [
        "Password reset"
    ]


def test_no_key_is_401(client_for, project):
    response = client_for(None).post("/templates", RESET, format="json")
    assert_error(response, 401, "UNAUTHORIZED", "You need to be authenticated to do this")
    assert not Template.objects.exists()


# ---------------------------------------------------------------------------------------------
# The delete guard: SEND_EMAIL steps


def workflow_sending(sk, template_id: str, *, name: str = "Welcome", enabled: bool = False):
    step = {"type": "SEND_EMAIL", "name": "Send it", "config": {"templateId": template_id}}
    response = sk.post(
        "/workflows",
        {"name": name, "eventName": "signed_up", "enabled": enabled, "steps": [step]},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_a_template_used_by_workflows_cannot_be_deleted(sk, project):
    created = make(sk)
    first = workflow_sending(sk, created["id"], name="Welcome")
    # However the id is spelled, and whether the workflow is enabled or not.
    second = workflow_sending(sk, created["id"].upper(), name="Nudge", enabled=True)
    response = sk.delete(f"/templates/{created['id']}")
    assert_error(
        response,
        409,
        "CONFLICT",
        'Template "Password reset" is used by the SEND_EMAIL steps of 2 workflow(s) '
        '("Welcome", "Nudge") and cannot be deleted; remove it from those steps first',
        details={
            "usedInWorkflows": [
                {"id": first["id"], "name": "Welcome"},
                {"id": second["id"], "name": "Nudge"},
            ]
        },
    )
    assert Template.objects.filter(project=project).count() == 1

    # Steps replaced or workflow deleted: the template can go.
    sk.patch(f"/workflows/{first['id']}", {"steps": []}, format="json")
    assert sk.delete(f"/templates/{created['id']}").status_code == 409  # still "Nudge"
    assert sk.delete(f"/workflows/{second['id']}").status_code == 204
    assert sk.delete(f"/templates/{created['id']}").status_code == 204
    assert not Template.objects.filter(project=project).exists()


def test_another_template_or_project_does_not_block(sk, other_project, client_for):
    mine, other = make(sk, name="mine"), make(sk, name="other")
    workflow_sending(sk, other["id"])
    # Another project's step naming our id (the step API refuses that; rows may predate it).
    theirs = client_for(other_project.secret_key)
    their_template = make(theirs, name="theirs")
    workflow_sending(theirs, their_template["id"])
    WorkflowStep.objects.filter(project=other_project, type="SEND_EMAIL").update(
        config={"templateId": mine["id"]}
    )
    assert sk.delete(f"/templates/{mine['id']}").status_code == 204


def test_the_service_names_the_workflows(project, sk):
    created = make(sk)
    workflow = workflow_sending(sk, created["id"])
    used = templates.workflows_using(project, uuid.UUID(created["id"]))
    assert [(str(w.id), w.name) for w in used] == [(workflow["id"], "Welcome")]
