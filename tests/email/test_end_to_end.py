"""Email from start to end, with real commits and the immediate task backend: nothing of ours
is called directly past the entry point.

- A workflow sends a welcome mail through an ESP's backend (anymail's test backend, which
  reports a provider message id as a real one does), the ESP reports an open through anymail's
  tracking signal, ``email.open`` is recorded and the run's WAIT_FOR_EVENT on it resumes.
- Through the HTTP API alone: ``POST /v1/send`` answers with the email id, ``GET /events``
  shows ``email.sent`` for the contact (with the message id), and Postmark's open webhook for
  that message id, posted to anymail's URL, records ``email.open``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.test import Client

import plunk_events
from plunk_events.models import Contact, Email, Event, Template
from plunk_events.services import workflows
from plunk_events.workflow_models import WorkflowExecution, WorkflowStepExecution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def esp(settings):
    """An ESP's backend: anymail's test backend keeps the mail and reports a message id."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.ANYMAIL = {**getattr(settings, "ANYMAIL", {}), "TEST_SEND_DEFAULTS": {}}
    settings.PLUNK_EVENTS = {"PUBLIC_URL": "https://acme.example"}
    from django.core import mail

    mail.outbox = []
    return mail.outbox


def test_a_welcome_mail_is_opened_and_the_wait_for_the_open_resumes(project, esp):
    welcome = Template.objects.create(
        project=project,
        name="Welcome",
        type=Template.Type.MARKETING,
        subject="Welcome, {{firstName ?? friend}}",
        body="<p>Hi {{firstName}}, <a href='https://acme.example/start'>start here</a>.</p>",
        from_email="hello@acme.example",
        from_name="Acme",
    )
    workflows.create_workflow(
        project,
        name="Welcome series",
        event_name="signed_up",
        enabled=True,
        steps=[
            {"type": "SEND_EMAIL", "name": "Welcome", "config": {"templateId": str(welcome.pk)}},
            {
                "type": "WAIT_FOR_EVENT",
                "name": "Opened?",
                "config": {"eventName": "email.open", "timeout": 3 * 86400},
            },
            {"type": "UPDATE_CONTACT", "name": "Engaged", "config": {"updates": {"engaged": True}}},
        ],
    )

    plunk_events.track(project, "ann@example.com", "signed_up", data={"firstName": "Ann"})

    ann = Contact.objects.get(project=project, email="ann@example.com")
    (sent,) = esp
    assert sent.subject == "Welcome, Ann"
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    email = Email.objects.get(contact=ann)
    assert email.status == Email.Status.SENT
    assert email.message_id == str(sent.anymail_status.message_id)  # the provider's id
    assert Event.objects.filter(contact=ann, name="email.sent", email_id=email.pk).count() == 1
    wait = WorkflowStepExecution.objects.get(contact=ann, step__type="WAIT_FOR_EVENT")
    assert wait.status == "WAITING"

    opened_at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    tracking.send(
        sender=object,
        event=AnymailTrackingEvent(
            event_type="opened", message_id=email.message_id, timestamp=opened_at
        ),
        esp_name="Postmark",
    )

    (opened,) = Event.objects.filter(contact=ann, name="email.open")
    assert opened.email_id == email.pk
    assert opened.data["isFirstOpen"] is True and opened.data["templateId"] == str(welcome.pk)
    email.refresh_from_db()
    assert (email.status, email.opens, email.opened_at) == ("OPENED", 1, opened_at)
    wait.refresh_from_db()
    assert wait.status == "COMPLETED" and wait.output["outcome"] == "EVENT"
    assert wait.output["eventData"]["emailId"] == str(email.pk)
    assert WorkflowExecution.objects.get(contact=ann).status == "COMPLETED"
    ann.refresh_from_db()
    assert ann.data == {"firstName": "Ann", "engaged": True}


def test_send_then_sent_then_an_open_through_the_http_api_alone(project, sk, mailoutbox):
    answer = sk.post(
        "/v1/send",
        {
            "to": "bo@example.com",
            "subject": "Your code",
            "body": "<p>It is {{code}}</p>",
            "data": {"code": {"value": "4711", "persistent": False}},
        },
        format="json",
    )
    assert answer.status_code == 200, answer.content
    [sent_to] = answer.json()["data"]["emails"]
    email_id = sent_to["email"]
    assert sent_to["contact"]["email"] == "bo@example.com"

    [sent] = sk.get("/events", {"eventName": "email.sent"}).json()["events"]
    assert sent["emailId"] == email_id
    assert sent["contact"] == {"email": "bo@example.com"}
    assert "4711" in mailoutbox[0].alternatives[0][0]

    webhook = Client().post(
        "/anymail/postmark/tracking/",
        {
            "RecordType": "Open",
            "MessageStream": "outbound",
            "FirstOpen": True,
            "Recipient": "bo@example.com",
            "MessageID": sent["data"]["messageId"],
            "ReceivedAt": "2026-12-01T12:00:00Z",
            "Metadata": {},
        },
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"tests:webhook-secret").decode(),
    )
    assert webhook.status_code == 200

    [opened] = sk.get("/events", {"eventName": "email.open"}).json()["events"]
    assert opened["emailId"] == email_id
    assert opened["contact"] == {"email": "bo@example.com"}
    assert opened["data"]["opens"] == 1
    # The send's contact is new, so unsubscribed (Plunk's rule for /v1/send); the code was
    # for this mail only.
    contact = sk.get(f"/contacts/{sent_to['contact']['id']}").json()
    assert contact["subscribed"] is False and "code" not in (contact["data"] or {})
