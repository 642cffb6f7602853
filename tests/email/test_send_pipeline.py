"""Sending (plunk_events.services.email_send): an Email queued PENDING in the caller's
transaction, handed to Django's email system by the ``send_email`` task after the commit, and
``email.sent`` recorded once through the event store. The mail goes through real backends:
Django's locmem (``mailoutbox``), django-anymail's test ESP, and a backend that refuses."""

from __future__ import annotations

import base64
import smtplib
from email import message_from_bytes, policy

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from plunk_events.models import Contact, Email, Event, Template
from plunk_events.services import email_links, rollups, workflows
from plunk_events.services.email_send import Message, deliver, message_from_template, queue_email
from plunk_events.workflow_models import WorkflowExecution

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://mail.example.com"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


class RefusingBackend(BaseEmailBackend):
    """A mail server that refuses every message (a backend, as SMTP's would raise)."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPException("550 5.7.1 Relaying denied")


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PLUNK_EVENTS = {"PUBLIC_URL": PUBLIC_URL}
    settings.DEFAULT_FROM_EMAIL = "site@example.com"


@pytest.fixture
def ann(project):
    return Contact.objects.create(
        project=project, email="ann@x.io", subscribed=True, data={"firstName": "Ann"}
    )


@pytest.fixture
def template(project):
    return Template.objects.create(
        project=project,
        name="Welcome",
        subject="Welcome, {{firstName}}",
        body="<p>Hi {{firstName}}, your code is {{code}}.</p>",
        from_email="hello@acme.io",
        from_name="Acme",
        reply_to="support@acme.io",
        type=Template.Type.TRANSACTIONAL,
    )


def queue(project, contact, message, **kwargs) -> Email:
    """Queue in a transaction of its own (whose commit the test database never reaches, so
    the task does not run: the test calls :func:`deliver` as the worker would)."""
    kwargs.setdefault("source", Email.Source.TRANSACTIONAL)
    with transaction.atomic():
        return queue_email(project, contact, message, **kwargs)


def sent_events(contact=None):
    events = Event.objects.filter(name="email.sent")
    return list(events.filter(contact=contact) if contact else events)


def test_the_task_sends_the_message_after_the_commit(
    project, ann, template, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        email = queue(project, ann, message_from_template(template), variables={"code": "42"})
    assert email.status == Email.Status.PENDING and not mailoutbox  # nothing sent in the write
    assert (email.subject, email.body) == ("Welcome, Ann", "<p>Hi Ann, your code is 42.</p>")
    assert len(callbacks) == 1
    callbacks[0]()  # the commit: the immediate backend runs send_email
    email.refresh_from_db()
    assert email.status == Email.Status.SENT and email.sent_at is not None
    assert [m.subject for m in mailoutbox] == ["Welcome, Ann"]


@pytest.mark.django_db(transaction=True)
def test_queue_email_refuses_to_run_outside_a_transaction(project, ann, template):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        queue_email(project, ann, message_from_template(template), source="TRANSACTIONAL")
    assert not Email.objects.exists()


def test_the_sent_message(project, ann, template, mailoutbox):
    message = message_from_template(
        template,
        headers={"X-Campaign": "spring"},
        attachments=[
            {
                "filename": "invoice.pdf",
                "content": base64.b64encode(b"%PDF-1.4 invoice").decode(),
                "contentType": "application/pdf",
            },
            {
                "filename": "logo.png",
                "content": PNG,
                "contentType": "image/png",
                "contentId": "logo",
            },
        ],
    )
    email = queue(project, ann, message, variables={"code": "<42>"}, to_name="Ann Lee")
    assert deliver(email.pk) == Email.Status.SENT

    [sent] = mailoutbox
    assert sent.from_email == "Acme <hello@acme.io>"
    assert sent.to == ["Ann Lee <ann@x.io>"]
    assert sent.reply_to == ["support@acme.io"]
    assert sent.body == "Hi Ann, your code is <42>."
    assert sent.alternatives[0][0] == "<p>Hi Ann, your code is &lt;42&gt;.</p>"
    mime = sent.message()
    assert mime["X-Campaign"] == "spring"
    assert "List-Unsubscribe" not in mime  # transactional mail
    message_id = mime["Message-ID"]
    assert message_id == f"<{email.pk}@acme.io>"
    email.refresh_from_db()
    assert email.message_id == message_id.strip("<>")  # the locmem backend has no provider id

    parts = {part.get_filename(): part for part in mime.walk() if part.get_filename()}
    assert parts["invoice.pdf"].get_payload(decode=True) == b"%PDF-1.4 invoice"
    assert parts["invoice.pdf"].get_content_type() == "application/pdf"
    logo = parts["logo.png"]
    assert logo["Content-ID"] == "<logo>"
    assert logo.get_content_disposition() == "inline"
    assert logo.get_payload(decode=True) == base64.b64decode(PNG)


def test_a_name_with_commas_and_accents_survives_in_the_headers(project, ann, mailoutbox):
    message = Message(subject="s", body="b", from_email="hi@acme.io", from_name="Zoë, Acme")
    deliver(queue(project, ann, message).pk)
    [sent] = mailoutbox
    parsed = message_from_bytes(sent.message().as_bytes(), policy=policy.default)
    [sender] = parsed["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Zoë, Acme", "hi@acme.io")


def test_an_internationalised_domain_is_sent_in_its_ascii_form(project, mailoutbox):
    """The API accepts ``ann@bücher.de`` (Django's EmailValidator takes IDN domains): the
    message goes to the domain's punycode, as Django's own ``sanitize_address`` would send it,
    instead of failing "Invalid message" when the address is put in a header."""
    bea = Contact.objects.create(project=project, email="bea@bücher.de", subscribed=True)
    message = Message(subject="s", body="b", from_email="hi@müller.de", from_name="Müller")
    email = queue(project, bea, message, to_name="Béa")
    assert deliver(email.pk) == Email.Status.SENT
    [sent] = mailoutbox
    parsed = message_from_bytes(sent.message().as_bytes(), policy=policy.default)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["bea@xn--bcher-kva.de"]
    assert [a.display_name for a in parsed["To"].addresses] == ["Béa"]
    assert [a.addr_spec for a in parsed["From"].addresses] == ["hi@xn--mller-kva.de"]
    assert parsed["Message-ID"] == f"<{email.pk}@xn--mller-kva.de>"


def test_a_value_with_a_vertical_tab_in_the_subject_is_sent_on_one_line(project, ann, mailoutbox):
    """Contact data (anyone with the public key can set it) used to make the email FAILED:
    Python's email package breaks a header at a vertical tab and refuses the "embedded
    header" after it."""
    message = Message(subject="Hi {{nick}}", body="b", from_email="hi@acme.io")
    email = queue(project, ann, message, variables={"nick": "Ann\x0bBcc: x@evil.io"})
    assert deliver(email.pk) == Email.Status.SENT
    [sent] = mailoutbox
    parsed = message_from_bytes(sent.message().as_bytes(), policy=policy.default)
    assert (parsed["Subject"], parsed["Bcc"]) == ("Hi Ann Bcc: x@evil.io", None)


def test_the_sender_defaults(settings, project, ann, mailoutbox):
    message = Message(subject="s", body="b")
    assert queue(project, ann, message).from_email == "site@example.com"
    settings.PLUNK_EVENTS = {"PUBLIC_URL": PUBLIC_URL, "DEFAULT_FROM_EMAIL": "app@example.com"}
    assert queue(project, ann, message).from_email == "app@example.com"


def test_marketing_mail_carries_list_unsubscribe(project, ann, mailoutbox):
    message = Message(subject="News", body="<p>{{unsubscribeUrl}}</p>", marketing=True)
    deliver(queue(project, ann, message, source=Email.Source.WORKFLOW).pk)
    mime = mailoutbox[0].message()
    unsubscribe = email_links.links(ann)["unsubscribeUrl"]
    assert unsubscribe.startswith(PUBLIC_URL + "/email/unsubscribe/")
    assert mime["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe in mailoutbox[0].alternatives[0][0]


def test_marketing_mail_to_a_custom_recipient_has_no_unsubscribe_link_of_the_contact(
    project, ann, mailoutbox
):
    message = Message(subject="New sign-up", body="{{email}}", marketing=True)
    deliver(queue(project, ann, message, to_email="sales@acme.io").pk)
    assert "List-Unsubscribe" not in mailoutbox[0].message()
    assert mailoutbox[0].to == ["sales@acme.io"]


def test_email_sent_is_recorded_once_when_the_task_runs_twice(project, ann, template, mailoutbox):
    email = queue(project, ann, message_from_template(template))
    assert deliver(email.pk) == Email.Status.SENT
    assert deliver(email.pk) is None  # a retried or duplicated task
    assert len(mailoutbox) == 1
    email.refresh_from_db()
    [event] = sent_events(ann)
    assert event.email_id == email.pk
    assert event.created_at == email.sent_at
    assert event.data == {
        "subject": "Welcome, Ann",
        "from": "hello@acme.io",
        "fromName": "Acme",
        "messageId": email.message_id,
        "emailId": str(email.pk),
        "templateId": str(template.pk),
        "campaignId": None,
        "sourceType": "TRANSACTIONAL",
        "sentAt": email.sent_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    # It counts in the project's event names like every event.
    assert "email.sent" in rollups.event_names(project)


def test_a_backend_error_fails_the_email_without_an_event(settings, project, ann, template):
    settings.EMAIL_BACKEND = "tests.email.test_send_pipeline.RefusingBackend"
    email = queue(project, ann, message_from_template(template))
    assert deliver(email.pk) == Email.Status.FAILED
    email.refresh_from_db()
    assert email.status == Email.Status.FAILED
    assert email.error == "SMTPException: 550 5.7.1 Relaying denied"
    assert email.sent_at is None and email.message_id is None
    assert not sent_events()
    assert deliver(email.pk) is None  # a FAILED email is not tried again


def test_an_invalid_attachment_fails_the_email(project, ann, mailoutbox):
    message = Message(subject="s", body="b", attachments=[{"filename": "a", "content": "%%%"}])
    email = queue(project, ann, message)
    assert deliver(email.pk) == Email.Status.FAILED
    email.refresh_from_db()
    assert email.error.startswith("Invalid message") and not mailoutbox


def test_the_provider_id_of_an_anymail_backend(settings, project, ann, template, mailoutbox):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    email = queue(project, ann, message_from_template(template))
    deliver(email.pk)
    email.refresh_from_db()
    # anymail's test ESP numbers its messages by outbox position: the first is "0".
    assert email.message_id == "0"
    assert sent_events(ann)[0].data["messageId"] == "0"


def test_marketing_mail_is_not_sent_to_an_unsubscribed_contact(
    project, ann, mailoutbox, django_capture_on_commit_callbacks
):
    ann.subscribed = False
    ann.save()
    with django_capture_on_commit_callbacks() as callbacks:
        email = queue(project, ann, Message(subject="News", body="b", marketing=True))
    assert (email.status, email.error) == (Email.Status.FAILED, "Contact is unsubscribed")
    assert not callbacks  # no task
    assert deliver(email.pk) is None and not mailoutbox and not sent_events()


def test_a_contact_that_unsubscribes_before_the_task_runs_gets_no_marketing_mail(
    project, ann, mailoutbox
):
    marketing = queue(project, ann, Message(subject="News", body="b", marketing=True))
    receipt = queue(project, ann, Message(subject="Receipt", body="b"))
    Contact.objects.filter(pk=ann.pk).update(subscribed=False)
    assert deliver(marketing.pk) == Email.Status.FAILED
    assert deliver(receipt.pk) == Email.Status.SENT  # transactional mail goes regardless
    marketing.refresh_from_db()
    assert marketing.error == "Contact is unsubscribed"
    assert [m.subject for m in mailoutbox] == ["Receipt"]


def test_email_sent_starts_workflows(
    project, ann, template, mailoutbox, django_capture_on_commit_callbacks
):
    workflows.create_workflow(
        project,
        name="After the welcome",
        event_name="email.sent",
        enabled=True,
        steps=[{"type": "UPDATE_CONTACT", "name": "mark", "config": {"updates": {"welcomed": 1}}}],
    )
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        queue_email(project, ann, message_from_template(template), source="TRANSACTIONAL")
    execution = WorkflowExecution.objects.get(contact=ann)
    assert execution.status == WorkflowExecution.Status.COMPLETED
    assert execution.context["emailId"] == str(Email.objects.get().pk)
    ann.refresh_from_db()
    assert ann.data["welcomed"] == 1
