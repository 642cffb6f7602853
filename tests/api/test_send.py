"""``POST /v1/send``: the recipient forms, templates and overrides, the data and subscription
rules of the contact upsert, the message handed to Django's email system after the commit
(attachments, headers, sender), Idempotency-Key, and every refusal writing and sending nothing."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import uuid

import pytest
from django.test import override_settings

from plunk_events.email_models import Email, Template
from plunk_events.models import Contact, Event, IdempotencyKey, Segment, SegmentMembership
from plunk_events.services import sending

from .helpers import (
    TIMESTAMP,
    assert_error,
    assert_not_found,
    assert_secret_key_required,
    assert_validation,
    counts,
    field_error,
)

pytestmark = pytest.mark.django_db

REQUIRED_SUGGESTION = (
    "Required fields are missing. Ensure all required fields are included in your request."
)
SIMPLE = {"to": "user@example.com", "subject": "Hello", "body": "<p>Hi</p>"}
PDF = b"%PDF-1.4 tiny test file\n%%EOF\n"


@pytest.fixture
def send(sk, django_capture_on_commit_callbacks):
    """``send(body, client=sk, **headers)``: POST /v1/send; the on-commit callbacks (the email
    task, with the immediate backend) run as the request's transaction commits."""

    def post(body, client=None, **headers):
        with django_capture_on_commit_callbacks(execute=True):
            return (client or sk).post("/v1/send", body, format="json", **headers)

    return post


def ok(send, body, **headers) -> dict:
    response = send(body, **headers)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def parsed(message) -> email.message.EmailMessage:
    """A sent message as a mail client reads it."""
    return email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)


def html_of(message) -> str:
    return parsed(message).get_body(("html",)).get_content()


def contact(project, address="user@example.com") -> Contact:
    return Contact.objects.get(project=project, email=address)


def event_names(project) -> list[str]:
    return list(
        Event.objects.filter(project=project)
        .order_by("created_at", "id")
        .values_list("name", flat=True)
    )


def nothing_written(mailoutbox) -> None:
    assert counts() == (0, 0)
    assert not Email.objects.exists()
    assert not IdempotencyKey.objects.exists()
    assert mailoutbox == []


def template(project, **fields) -> Template:
    values = {
        "name": "Welcome",
        "subject": "Welcome {{name ?? friend}}",
        "body": "<h1>Hello {{name}}</h1><p>{{plan}}</p>",
        "from_email": "team@acme.test",
        "from_name": "Acme Team",
        "reply_to": "help@acme.test",
        "type": Template.Type.TRANSACTIONAL,
        **fields,
    }
    return Template.objects.create(project=project, **values)


# ---------------------------------------------------------------------------------------------
# The response and what is sent


def test_the_sdk_body_sends_one_email_from_the_default_sender(send, project, mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "django@site.test"
    data = ok(send, SIMPLE)
    saved = contact(project)
    sent = Email.objects.get()
    assert data == {
        "emails": [
            {"contact": {"id": str(saved.id), "email": "user@example.com"}, "email": str(sent.id)}
        ],
        "timestamp": data["timestamp"],
    }
    assert TIMESTAMP.match(data["timestamp"])
    assert [m.to for m in mailoutbox] == [["user@example.com"]]
    message = mailoutbox[0]
    assert message.subject == "Hello"
    assert message.from_email == "django@site.test"
    assert html_of(message).strip() == "<p>Hi</p>"
    assert (sent.status, sent.source, sent.marketing, sent.template_id) == (
        Email.Status.SENT,
        Email.Source.TRANSACTIONAL,
        False,
        None,
    )
    assert sent.contact_id == saved.id
    # Nothing at request time but the email's own ``email.sent``, once the backend took it.
    sent_event = Event.objects.get(project=project)
    assert (sent_event.name, sent_event.contact_id, sent_event.email_id) == (
        "email.sent",
        saved.id,
        sent.id,
    )


def test_the_app_setting_is_the_default_sender_before_djangos(send, mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "django@site.test"
    with override_settings(PLUNK_EVENTS={"DEFAULT_FROM_EMAIL": "plunk@site.test"}):
        ok(send, SIMPLE)
    assert mailoutbox[0].from_email == "plunk@site.test"


def test_a_default_sender_with_a_display_name_is_split(send, mailoutbox, settings):
    """Django's ``DEFAULT_FROM_EMAIL`` may read ``"Name <address>"``: the email stores the
    address and the name apart, and the message's From is not quoted twice."""
    settings.DEFAULT_FROM_EMAIL = "Acme Support <support@site.test>"
    ok(send, SIMPLE)
    sent = Email.objects.get()
    assert (sent.from_email, sent.from_name) == ("support@site.test", "Acme Support")
    assert mailoutbox[0].from_email == "Acme Support <support@site.test>"
    (event,) = Event.objects.filter(name="email.sent")
    assert (event.data["from"], event.data["fromName"]) == ("support@site.test", "Acme Support")


def test_to_as_an_object_names_the_recipient_and_stores_the_name(send, project, mailoutbox):
    ok(
        send,
        {
            **SIMPLE,
            "to": {"name": "Jane Doe", "email": " Jane@Example.COM "},
            "body": "<p>{{name}}</p>",
        },
    )
    jane = contact(project, "jane@example.com")
    assert jane.data == {"name": "Jane Doe"}
    assert mailoutbox[0].to == ["Jane Doe <jane@example.com>"]
    assert html_of(mailoutbox[0]).strip() == "<p>Jane Doe</p>"
    assert Email.objects.get().to_name == "Jane Doe"


def test_to_as_an_array_mixes_strings_and_objects_in_order(send, project, mailoutbox):
    data = ok(
        send,
        {
            **SIMPLE,
            "to": [
                "a@example.com",
                {"email": "b@example.com", "name": "Bee"},
                {"email": "c@example.com"},
            ],
        },
    )
    addresses = [item["contact"]["email"] for item in data["emails"]]
    assert addresses == ["a@example.com", "b@example.com", "c@example.com"]
    assert [m.to for m in mailoutbox] == [
        ["a@example.com"],
        ["Bee <b@example.com>"],
        ["c@example.com"],
    ]
    emails = {str(e.id): e for e in Email.objects.all()}
    for item in data["emails"]:
        assert emails[item["email"]].to_email == item["contact"]["email"]
        assert str(emails[item["email"]].contact_id) == item["contact"]["id"]
    assert contact(project, "b@example.com").data == {"name": "Bee"}
    assert contact(project, "a@example.com").data is None


def test_the_same_address_twice_is_one_contact_and_two_emails(send, project, mailoutbox):
    data = ok(
        send,
        {
            **SIMPLE,
            "to": [
                {"email": "a@example.com", "name": "First"},
                {"email": "A@example.com", "name": "Second"},
            ],
            "body": "{{name}}",
        },
    )
    assert data["emails"][0]["contact"] == data["emails"][1]["contact"]
    assert data["emails"][0]["email"] != data["emails"][1]["email"]
    assert Contact.objects.count() == 1
    # Each entry is upserted in turn, as Plunk does: the last name stays.
    assert contact(project, "a@example.com").data == {"name": "Second"}
    assert [html_of(m).strip() for m in mailoutbox] == ["First", "Second"]


def test_sender_reply_to_and_the_deprecated_name(send, mailoutbox):
    ok(
        send,
        {**SIMPLE, "from": {"name": "Acme", "email": "News@Acme.test"}, "reply": "help@acme.test"},
    )
    ok(send, {**SIMPLE, "from": "billing@acme.test", "name": "Billing"})
    ok(send, {**SIMPLE, "from": {"email": "x@acme.test"}, "name": "Fallback"})
    assert [m.from_email for m in mailoutbox] == [
        "Acme <News@Acme.test>",
        "Billing <billing@acme.test>",
        "Fallback <x@acme.test>",
    ]
    assert mailoutbox[0].reply_to == ["help@acme.test"]
    assert mailoutbox[1].reply_to == []


def test_custom_headers_reach_the_message(send, mailoutbox):
    ok(
        send,
        {**SIMPLE, "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@acme.test>"}},
    )
    message = parsed(mailoutbox[0])
    assert message["X-Campaign"] == "spring"
    assert message["List-Unsubscribe"] == "<mailto:u@acme.test>"
    assert Email.objects.get().headers == {
        "X-Campaign": "spring",
        "List-Unsubscribe": "<mailto:u@acme.test>",
    }


def test_an_attachment_is_sent_with_its_content_and_type(send, mailoutbox):
    encoded = base64.b64encode(PDF).decode()
    chunked = "\n".join(encoded[i : i + 16] for i in range(0, len(encoded), 16)).rstrip("=")
    attachment = {"filename": "invoice.pdf", "content": chunked, "contentType": "application/pdf"}
    ok(send, {**SIMPLE, "attachments": [attachment]})
    parts = list(parsed(mailoutbox[0]).iter_attachments())
    assert [(p.get_filename(), p.get_content_type(), p.get_content()) for p in parts] == [
        ("invoice.pdf", "application/pdf", PDF)
    ]
    # Stored normalised (line breaks gone, padding back), as the task decodes it.
    assert Email.objects.get().attachments == [
        {
            "filename": "invoice.pdf",
            "content": encoded,
            "contentType": "application/pdf",
            "disposition": "attachment",
        }
    ]


@pytest.mark.parametrize("replay", [False, True])
def test_attachments_over_djangos_upload_limit_are_sent(send, mailoutbox, settings, replay):
    """Django caps ``request.body`` at DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default); a send
    is capped by SEND_MAX_BYTES instead, so Plunk's 10 MB of attachments fit."""
    content = bytes(range(256)) * (9 * 1024 * 1024 // 256)  # 9 MB, 12 MB in base64
    big = {
        "filename": "big.bin",
        "content": base64.b64encode(content).decode(),
        "contentType": "application/octet-stream",
    }
    settings.PLUNK_EVENTS = {"IDEMPOTENCY_REPLAY": replay}
    ok(send, {**SIMPLE, "attachments": [big]}, HTTP_IDEMPOTENCY_KEY="big")
    [part] = parsed(mailoutbox[0]).iter_attachments()
    assert part.get_content() == content


def test_an_inline_image_carries_its_content_id(send, mailoutbox):
    png = b"\x89PNG\r\n\x1a\nfake"
    image = {
        "filename": "logo.png",
        "content": base64.b64encode(png).decode(),
        "contentType": "image/png",
        "contentId": "logo",
        "disposition": "inline",
    }
    ok(send, {**SIMPLE, "body": '<img src="cid:logo">', "attachments": [image]})
    parts = [p for p in parsed(mailoutbox[0]).walk() if p.get_content_type() == "image/png"]
    assert len(parts) == 1
    assert parts[0]["Content-ID"] == "<logo>"
    assert parts[0].get_content_disposition() == "inline"
    assert parts[0].get_content() == png


# ---------------------------------------------------------------------------------------------
# Templates


def test_a_template_gives_subject_body_sender_and_reply_to(send, project, mailoutbox):
    welcome = template(project)
    ok(
        send,
        {
            "to": {"email": "jane@example.com", "name": "Jane"},
            "template": str(welcome.id),
            "data": {"plan": "pro"},
        },
    )
    message = mailoutbox[0]
    assert message.subject == "Welcome Jane"
    assert html_of(message).strip() == "<h1>Hello Jane</h1><p>pro</p>"
    assert message.from_email == "Acme Team <team@acme.test>"
    assert message.reply_to == ["help@acme.test"]
    assert Email.objects.get().template_id == welcome.id


def test_request_fields_override_the_template(send, project, mailoutbox):
    welcome = template(project, body_format=Template.BodyFormat.MARKDOWN, body="# {{plan}}")
    body = {
        "to": "user@example.com",
        "template": str(welcome.id),
        "subject": "Custom {{plan}}",
        "from": {"email": "ceo@acme.test", "name": "The CEO"},
        "reply": "ceo@acme.test",
        "data": {"plan": "pro"},
    }
    ok(send, body)
    ok(send, {**body, "body": "# not markdown"})
    first, second = mailoutbox
    assert first.subject == "Custom pro"
    assert first.from_email == "The CEO <ceo@acme.test>"
    assert first.reply_to == ["ceo@acme.test"]
    assert html_of(first).strip() == "<h1>pro</h1>"  # the template's Markdown
    assert html_of(second).strip() == "# not markdown"  # a request's body is HTML


def test_a_marketing_template_is_still_sent_to_an_unsubscribed_contact(send, project, mailoutbox):
    news = template(project, type=Template.Type.MARKETING)
    ok(send, {"to": "user@example.com", "template": str(news.id)})
    assert contact(project).subscribed is False
    assert len(mailoutbox) == 1
    assert "List-Unsubscribe" not in parsed(mailoutbox[0])
    assert Email.objects.get().marketing is False


def test_unknown_template_is_404_and_writes_nothing(send, project, other_project, mailoutbox):
    elsewhere = template(other_project)
    for template_id in (str(elsewhere.id), str(uuid.uuid4())):
        response = send(
            {"to": "user@example.com", "template": template_id}, HTTP_IDEMPOTENCY_KEY="k"
        )
        assert_not_found(response, "Template", template_id)
    nothing_written(mailoutbox)


# ---------------------------------------------------------------------------------------------
# Contact data


def test_data_is_merged_into_the_contact_by_the_rules_of_track(send, project, mailoutbox):
    Contact.objects.create(
        project=project, email="user@example.com", data={"old": 1, "keep": "me", "gone": True}
    )
    ok(
        send,
        {
            **SIMPLE,
            "body": "{{plan}}|{{code}}|{{keep}}|{{email}}|{{id}}|{{gone ?? none}}",
            "data": {
                "plan": "pro",
                "code": {"value": "ABC123", "persistent": False},
                "stored": {"value": 7, "persistent": True},
                "keep": "",
                "gone": None,
                "email": "attacker@evil.test",
                "id": "forged",
                "unsubscribeUrl": "https://evil.test",
            },
        },
    )
    saved = contact(project)
    assert saved.data == {"old": 1, "keep": "me", "plan": "pro", "stored": 7}
    # The non-persistent code renders; reserved keys are the contact's own; the send's own
    # values render as sent, "" included (Plunk's getMergedData), while the contact keeps "me".
    assert html_of(mailoutbox[0]).strip() == f"pro|ABC123||user@example.com|{saved.id}|none"
    assert event_names(project) == ["email.sent"]


def test_data_reaches_every_recipient(send, project):
    ok(send, {**SIMPLE, "to": ["a@example.com", "b@example.com"], "data": {"plan": "pro"}})
    assert [c.data for c in Contact.objects.order_by("email")] == [{"plan": "pro"}] * 2


def test_contact_changes_reach_tracked_segments(send, sk, project):
    condition = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}],
    }
    created = sk.post(
        "/segments",
        {"name": "Pros", "condition": condition, "trackMembership": True},
        format="json",
    )
    assert created.status_code == 201
    ok(send, {**SIMPLE, "data": {"plan": "pro"}})
    segment = Segment.objects.get(project=project)
    assert list(
        SegmentMembership.objects.filter(segment=segment).values_list("contact_id", flat=True)
    ) == [contact(project).id]


# ---------------------------------------------------------------------------------------------
# Subscription


def test_a_new_contact_is_unsubscribed_without_an_event(send, project, mailoutbox):
    ok(send, SIMPLE)
    assert contact(project).subscribed is False
    assert event_names(project) == ["email.sent"]
    assert len(mailoutbox) == 1  # transactional: sent whatever the subscription


def test_a_new_contact_can_be_subscribed_by_the_request(send, project):
    ok(send, {**SIMPLE, "subscribed": True})
    assert contact(project).subscribed is True
    assert event_names(project) == ["email.sent"]


@pytest.mark.parametrize("state", [True, False])
def test_an_existing_contact_keeps_its_subscription(send, project, state):
    Contact.objects.create(project=project, email="user@example.com", subscribed=state)
    ok(send, SIMPLE)
    assert contact(project).subscribed is state
    assert event_names(project) == ["email.sent"]


@pytest.mark.parametrize(
    ("before", "sent", "event"),
    [(False, True, "contact.subscribed"), (True, False, "contact.unsubscribed")],
)
def test_an_explicit_change_records_its_event(send, project, before, sent, event):
    Contact.objects.create(project=project, email="user@example.com", subscribed=before)
    ok(send, {**SIMPLE, "subscribed": sent})
    saved = contact(project)
    assert saved.subscribed is sent
    flip = Event.objects.get(project=project, name=event)
    assert (flip.contact_id, flip.data, flip.email_id) == (saved.id, None, None)
    assert event_names(project) == [event, "email.sent"]


# ---------------------------------------------------------------------------------------------
# Refusals: a clear 4xx, nothing written, nothing sent


def too_small(field_name):
    return field_error(field_name, "too_small", "String must contain at least 1 character(s)")


def invalid(field_name, message):
    return field_error(field_name, "invalid_string", message)


def attachment(**fields):
    return {
        "filename": "a.txt",
        "content": base64.b64encode(b"hi").decode(),
        "contentType": "text/plain",
        **fields,
    }


CONTENT_REQUIRED = field_error("template", "custom", sending.CONTENT_REQUIRED_MESSAGE)
BAD_FROM = field_error("from", "invalid_union", sending.FROM_MESSAGE)
ELEVEN_MB = base64.b64encode(b"x" * (10 * 1024 * 1024 + 1)).decode()

BAD_BODIES = {
    "no-to": (
        {"subject": "s", "body": "b"},
        [field_error("to", "invalid_type", "Required", "undefined")],
    ),
    "to-number": (
        {**SIMPLE, "to": 5},
        [field_error("to", "invalid_type", "Expected string or object, received number", "number")],
    ),
    "to-invalid": ({**SIMPLE, "to": "nope"}, [invalid("to", "Invalid email")]),
    "to-empty-array": (
        {**SIMPLE, "to": []},
        [field_error("to", "too_small", "Array must contain at least 1 element(s)")],
    ),
    "to-too-many": (
        {**SIMPLE, "to": [f"u{i}@example.com" for i in range(101)]},
        [field_error("to", "too_big", "Array must contain at most 100 element(s)")],
    ),
    "one-bad-recipient-of-three": (
        {
            **SIMPLE,
            "to": [
                "a@example.com",
                {"email": "b@example.com", "name": "B\r\nBcc: x@evil.test"},
                {"name": "no email"},
            ],
        },
        [
            invalid("to.1.name", "Name contains invalid characters"),
            field_error("to.2.email", "invalid_type", "Required", "undefined"),
        ],
    ),
    "name-too-long": (
        {**SIMPLE, "to": {"email": "a@example.com", "name": "n" * 101}},
        [field_error("to.name", "too_big", "String must contain at most 100 character(s)")],
    ),
    "no-content": ({"to": "a@example.com"}, [CONTENT_REQUIRED]),
    "subject-without-body": ({"to": "a@example.com", "subject": "s"}, [CONTENT_REQUIRED]),
    "subject-empty": ({**SIMPLE, "subject": ""}, [too_small("subject")]),
    "subject-newline": (
        {**SIMPLE, "subject": "Hi\r\nBcc: x@evil.test"},
        [invalid("subject", "Subject contains invalid characters")],
    ),
    "subject-too-long": (
        {**SIMPLE, "subject": "s" * 999},
        [field_error("subject", "too_big", "String must contain at most 998 character(s)")],
    ),
    "body-empty": ({**SIMPLE, "body": ""}, [too_small("body")]),
    "template-not-uuid": (
        {"to": "a@example.com", "template": "welcome"},
        [invalid("template", "Invalid uuid")],
    ),
    "from-invalid": ({**SIMPLE, "from": "not an address"}, [BAD_FROM]),
    "from-object-invalid": ({**SIMPLE, "from": {"name": "x"}}, [BAD_FROM]),
    "from-name-newline": (
        {**SIMPLE, "from": {"email": "a@acme.test", "name": "A\nB"}},
        [invalid("from.name", "Name contains invalid characters")],
    ),
    "name-vertical-tab": (
        {**SIMPLE, "to": {"email": "a@example.com", "name": "A\x0bBcc: x@evil.test"}},
        [invalid("to.name", "Name contains invalid characters")],
    ),
    "subject-form-feed": (
        {**SIMPLE, "subject": "Hi\x0cBcc: x@evil.test"},
        [invalid("subject", "Subject contains invalid characters")],
    ),
    "header-value-file-separator": (
        {**SIMPLE, "headers": {"X-Test": "a\x1cBcc: x@evil.test"}},
        [invalid("headers.X-Test", "Header value contains invalid characters")],
    ),
    "reply-invalid": ({**SIMPLE, "reply": "nope"}, [invalid("reply", "Invalid email")]),
    "header-value-crlf": (
        {**SIMPLE, "headers": {"X-Test": "a\r\nBcc: x@evil.test"}},
        [invalid("headers.X-Test", "Header value contains invalid characters")],
    ),
    "header-name-crlf": (
        {**SIMPLE, "headers": {"X-Test\r\nBcc": "x"}},
        [
            invalid(
                "headers.X-Test\r\nBcc",
                "Header name must be 1-255 printable ASCII characters without spaces or colons",
            )
        ],
    ),
    "header-value-too-long": (
        {**SIMPLE, "headers": {"X-Test": "v" * 999}},
        [field_error("headers.X-Test", "too_big", "String must contain at most 998 character(s)")],
    ),
    "header-protected": (
        {**SIMPLE, "headers": {"bcc": "x@evil.test"}},
        [
            invalid(
                "headers.bcc",
                'Header "bcc" cannot be set: the message sets it from the request\'s fields '
                "(from, to, reply, subject) or the mail system does",
            )
        ],
    ),
    "data-not-object": (
        {**SIMPLE, "data": [1]},
        [field_error("data", "invalid_type", "Expected object, received array", "array")],
    ),
    "subscribed-not-boolean": (
        {**SIMPLE, "subscribed": "yes"},
        [field_error("subscribed", "invalid_type", "Expected boolean, received string", "string")],
    ),
    "eleven-attachments": (
        {**SIMPLE, "attachments": [attachment()] * 11},
        [field_error("attachments", "too_big", "Array must contain at most 10 element(s)")],
    ),
    "attachments-over-10-mb": (
        {**SIMPLE, "attachments": [attachment(content=ELEVEN_MB)]},
        [field_error("attachments", "custom", "Total attachment size must not exceed 10MB")],
    ),
    "inline-without-content-id": (
        {**SIMPLE, "attachments": [attachment(disposition="inline")]},
        [
            field_error(
                "attachments.0.contentId",
                "custom",
                "Content ID is required when disposition is inline",
            )
        ],
    ),
    "attachment-not-base64": (
        {**SIMPLE, "attachments": [attachment(content="not base64!")]},
        [invalid("attachments.0.content", "Content must be base64-encoded")],
    ),
    "attachment-filename-quote": (
        {**SIMPLE, "attachments": [attachment(filename='a".txt')]},
        [invalid("attachments.0.filename", "Filename contains invalid characters")],
    ),
    "attachment-content-type": (
        {**SIMPLE, "attachments": [attachment(contentType="pdf")]},
        [
            invalid(
                "attachments.0.contentType",
                "Content type must be a MIME type such as application/pdf",
            )
        ],
    ),
    "attachment-content-id": (
        {**SIMPLE, "attachments": [attachment(contentId="<logo>", disposition="inline")]},
        [invalid("attachments.0.contentId", "Content ID cannot contain <, >, \\r, or \\n")],
    ),
    "attachment-disposition": (
        {**SIMPLE, "attachments": [attachment(disposition="hidden")]},
        [
            field_error(
                "attachments.0.disposition",
                "invalid_enum_value",
                "Invalid enum value. Expected 'attachment' | 'inline', received 'hidden'",
            )
        ],
    ),
}


#: Cases whose message says "required" get the API's suggestion for missing fields.
REQUIRED_CASES = {"no-content", "subject-without-body", "inline-without-content-id"}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_input_is_422_and_writes_and_sends_nothing(send, project, mailoutbox, case):
    body, errors = BAD_BODIES[case]
    response = send(body, HTTP_IDEMPOTENCY_KEY="retry")
    assert_validation(response, errors, REQUIRED_SUGGESTION if case in REQUIRED_CASES else None)
    nothing_written(mailoutbox)


def test_a_body_that_is_not_an_object_is_422(send, mailoutbox):
    response = send(["a@example.com"])
    assert_validation(
        response, [field_error("body", "invalid_type", "Expected object, received array", "array")]
    )
    nothing_written(mailoutbox)


def test_malformed_json_is_400(sk, mailoutbox):
    response = sk.post("/v1/send", "{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    nothing_written(mailoutbox)


def test_a_body_over_send_max_bytes_is_413(send, mailoutbox):
    with override_settings(PLUNK_EVENTS={"SEND_MAX_BYTES": 100}):
        response = send({**SIMPLE, "body": "x" * 200})
    assert response.status_code == 413
    assert response.json()["error"]["message"].endswith("the limit is 100")
    nothing_written(mailoutbox)


def test_the_public_key_is_refused(send, pk, mailoutbox):
    assert_secret_key_required(send(SIMPLE, client=pk))
    nothing_written(mailoutbox)


def test_no_key_is_401(send, client_for, mailoutbox):
    response = send(SIMPLE, client=client_for(None))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    nothing_written(mailoutbox)


def test_the_api_rate_limit_applies(send, mailoutbox):
    with override_settings(PLUNK_EVENTS={"RATE_LIMITS": {"api": "1/minute"}}):
        assert send(SIMPLE).status_code == 200
        response = send(SIMPLE)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert len(mailoutbox) == 1


# ---------------------------------------------------------------------------------------------
# Idempotency-Key


def test_a_reused_key_is_409_and_sends_nothing_more(send, project, mailoutbox):
    assert send(SIMPLE, HTTP_IDEMPOTENCY_KEY="reset-1").status_code == 200
    response = send({**SIMPLE, "subject": "Other"}, HTTP_IDEMPOTENCY_KEY="reset-1")
    assert_error(
        response,
        409,
        "IDEMPOTENCY_KEY_REUSED",
        'Idempotency-Key "reset-1" has already been used',
        details={
            "key": "reset-1",
            "originalRequest": "POST /v1/send",
            "originalRequestAt": response.json()["error"]["details"]["originalRequestAt"],
            "originalStatusCode": 200,
        },
    )
    assert len(mailoutbox) == 1
    assert Email.objects.count() == 1


def test_a_refused_send_leaves_its_key_free(send, mailoutbox):
    assert send({**SIMPLE, "to": "nope"}, HTTP_IDEMPOTENCY_KEY="k").status_code == 422
    assert send(SIMPLE, HTTP_IDEMPOTENCY_KEY="k").status_code == 200
    assert len(mailoutbox) == 1


def test_replay_returns_the_first_response_and_sends_once(send, mailoutbox):
    with override_settings(PLUNK_EVENTS={"IDEMPOTENCY_REPLAY": True}):
        first = send(SIMPLE, HTTP_IDEMPOTENCY_KEY="r")
        again = send(SIMPLE, HTTP_IDEMPOTENCY_KEY="r")
        different = send({**SIMPLE, "subject": "x"}, HTTP_IDEMPOTENCY_KEY="r")
    assert first.status_code == again.status_code == 200
    assert (first["Idempotent-Replayed"], again["Idempotent-Replayed"]) == ("false", "true")
    assert again.content == first.content
    assert json.loads(first.content)["data"]["emails"][0]["email"] == str(Email.objects.get().id)
    assert different.status_code == 409
    assert different.json()["error"]["details"]["reason"] == "different_request"
    assert len(mailoutbox) == 1
