"""Events from the mail (issue 11): django-anymail's real ``tracking`` and ``inbound`` signals,
and its real Postmark webhook, become ``email.*`` events that move the Email row forward,
unsubscribe on permanent bounces and complaints, and reach workflows like any event."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from anymail.inbound import AnymailInboundMessage
from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking
from django.db import DataError, OperationalError, connection
from django.test import Client

from plunk_events import signals
from plunk_events.constants import CONTACT_UNSUBSCRIBED
from plunk_events.models import Contact, Email, Event
from plunk_events.services import workflows
from plunk_events.services.email_tracking import Kind, TrackingEvent, apply_tracking
from plunk_events.workflow_models import WorkflowExecution
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


@pytest.fixture
def ann(project):
    return Contact.objects.create(project=project, email="ann@example.com", subscribed=True)


def sent_email(contact, message_id="pm-0001", *, to_email=None, **fields) -> Email:
    return Email.objects.create(
        project_id=contact.project_id,
        contact=contact,
        source=Email.Source.TRANSACTIONAL,
        to_email=to_email or contact.email,
        from_email="hello@acme.test",
        from_name="Acme",
        subject="Welcome",
        body="<p>Hi</p>",
        status=Email.Status.SENT,
        message_id=message_id,
        sent_at=T0 - timedelta(minutes=5),
        **fields,
    )


@pytest.fixture
def email(ann):
    return sent_email(ann)


def fire(event_type, message_id="pm-0001", *, at=T0, esp_name="Postmark", **kwargs):
    """Send anymail's tracking signal the way its webhook views do."""
    event = AnymailTrackingEvent(
        event_type=event_type, message_id=message_id, timestamp=at, **kwargs
    )
    tracking.send(sender=object, event=event, esp_name=esp_name)


def events(name=None) -> list[Event]:
    rows = Event.objects.order_by("created_at", "id")
    return list(rows.filter(name=name) if name else rows)


def base(email) -> dict:
    return {
        "subject": "Welcome",
        "from": "hello@acme.test",
        "fromName": "Acme",
        "messageId": email.message_id,
        "emailId": str(email.id),
        "templateId": None,
        "campaignId": None,
        "sourceType": "TRANSACTIONAL",
    }


# ---------------------------------------------------------------------------------------------
# Tracking


def test_delivered_records_email_delivery_and_stamps_the_email(email):
    fire("delivered")
    (event,) = events()
    assert event.name == "email.delivery"
    assert (event.contact_id, event.email_id) == (email.contact_id, email.id)
    assert event.data == {**base(email), "deliveredAt": "2024-01-15T10:30:00.000Z"}
    email.refresh_from_db()
    assert (email.status, email.delivered_at) == ("DELIVERED", T0)


def test_opens_count_and_keep_the_first_time(email):
    fire("opened")
    fire("opened", at=T0 + timedelta(hours=1))
    first, second = events("email.open")
    assert first.data == {
        **base(email),
        "openedAt": "2024-01-15T10:30:00.000Z",
        "opens": 1,
        "isFirstOpen": True,
    }
    assert (second.data["opens"], second.data["isFirstOpen"]) == (2, False)
    assert second.data["openedAt"] == "2024-01-15T10:30:00.000Z"
    email.refresh_from_db()
    assert (email.status, email.opens, email.opened_at) == ("OPENED", 2, T0)


def test_clicks_carry_the_link(email):
    fire("clicked", click_url="https://acme.test/a")
    fire("clicked", click_url="https://acme.test/b", at=T0 + timedelta(minutes=1))
    first, second = events("email.click")
    assert first.data == {
        **base(email),
        "link": "https://acme.test/a",
        "clickedAt": "2024-01-15T10:30:00.000Z",
        "clicks": 1,
        "isFirstClick": True,
    }
    assert (second.data["link"], second.data["clicks"], second.data["isFirstClick"]) == (
        "https://acme.test/b",
        2,
        False,
    )
    email.refresh_from_db()
    assert (email.status, email.clicks, email.clicked_at) == ("CLICKED", 2, T0)


def test_status_never_goes_back_but_times_and_counters_move(email):
    fire("clicked", click_url="https://acme.test/")
    fire("opened", at=T0 + timedelta(minutes=2))
    fire("delivered", at=T0 - timedelta(minutes=1))
    email.refresh_from_db()
    assert email.status == "CLICKED"
    assert (email.opens, email.opened_at) == (1, T0 + timedelta(minutes=2))
    assert email.delivered_at == T0 - timedelta(minutes=1)
    assert [e.name for e in events()] == ["email.click", "email.open", "email.delivery"]


def test_a_permanent_bounce_unsubscribes_the_contact_once(email, ann):
    fire("bounced", reject_reason="bounced", description="The server was unable to deliver")
    fire("bounced", at=T0 + timedelta(hours=1))
    assert [e.name for e in events()] == ["email.bounce", CONTACT_UNSUBSCRIBED, "email.bounce"]
    bounce, unsubscribed, _ = events()
    assert bounce.data == {
        **base(email),
        "bounceType": "Permanent",
        "bouncedAt": "2024-01-15T10:30:00.000Z",
    }
    assert unsubscribed.contact_id == ann.id
    assert unsubscribed.data == {"reason": "bounce", "emailId": str(email.id)}
    ann.refresh_from_db()
    email.refresh_from_db()
    assert ann.subscribed is False
    assert (email.status, email.bounced_at) == ("BOUNCED", T0)


@pytest.mark.parametrize(
    ("event_type", "extra"),
    [
        ("deferred", {}),  # Postmark "Transient", Mailgun temporary failures
        ("bounced", {"description": "Transient: MailboxFull"}),  # Amazon SES
        ("bounced", {"esp_event": {"RecordType": "Bounce", "Type": "SoftBounce"}}),  # Postmark
        ("bounced", {"esp_event": {"event": "soft_bounce"}}),  # Brevo, Mandrill
    ],
)
def test_a_transient_bounce_is_only_recorded(email, ann, event_type, extra):
    fire(event_type, **extra)
    (event,) = events()
    assert event.data == {**base(email), "bounceType": "Transient", "transientBounce": True}
    ann.refresh_from_db()
    email.refresh_from_db()
    assert ann.subscribed is True
    assert (email.status, email.bounced_at) == ("SENT", None)


def test_a_complaint_unsubscribes_and_wins_over_a_bounce(email, ann):
    fire("bounced")
    fire("complained", at=T0 + timedelta(days=1))
    assert [e.name for e in events()] == ["email.bounce", CONTACT_UNSUBSCRIBED, "email.complaint"]
    complaint = events("email.complaint")[0]
    assert complaint.data == {**base(email), "complainedAt": "2024-01-16T10:30:00.000Z"}
    email.refresh_from_db()
    assert (email.status, email.complained_at) == ("COMPLAINED", T0 + timedelta(days=1))


def test_a_complaint_of_a_subscribed_contact_records_its_reason(email, ann):
    fire("complained")
    assert [e.data for e in events(CONTACT_UNSUBSCRIBED)] == [
        {"reason": "complaint", "emailId": str(email.id)}
    ]
    ann.refresh_from_db()
    assert ann.subscribed is False


def test_a_bounce_of_a_custom_recipient_leaves_the_contact_alone(ann):
    sent_email(ann, "pm-custom", to_email="ops@acme.test")
    fire("bounced", "pm-custom")
    assert [e.name for e in events()] == ["email.bounce"]
    ann.refresh_from_db()
    assert ann.subscribed is True


def test_unknown_message_ids_and_other_event_types_write_nothing(email):
    fire("opened", "not-ours")
    fire("delivered", None)
    for ignored in ("queued", "sent", "rejected", "failed", "autoresponded", "unsubscribed"):
        fire(ignored)
    assert events() == []
    email.refresh_from_db()
    assert (email.status, email.opens, email.delivered_at) == ("SENT", 0, None)


def test_the_message_id_matches_with_or_without_angle_brackets(ann):
    sent_email(ann, "20240115.abc@mg.acme.test")
    fire("delivered", "<20240115.abc@mg.acme.test>")
    assert [e.name for e in events()] == ["email.delivery"]


def test_a_failed_email_reported_delivered_moves_on(ann):
    failed = sent_email(ann, "pm-failed")
    Email.objects.filter(pk=failed.pk).update(status=Email.Status.FAILED)
    fire("delivered", "pm-failed")
    failed.refresh_from_db()
    assert failed.status == "DELIVERED"


def test_email_events_start_workflows(project, email, django_capture_on_commit_callbacks):
    on_click = workflows.create_workflow(
        project,
        name="Clicked",
        event_name="email.click",
        enabled=True,
        steps=[{"type": "UPDATE_CONTACT", "name": "Tag", "config": {"updates": {"hot": True}}}],
    )
    on_bounce = workflows.create_workflow(
        project, name="Bounced", event_name=CONTACT_UNSUBSCRIBED, enabled=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        fire("clicked", click_url="https://acme.test/")
    with django_capture_on_commit_callbacks(execute=True):
        fire("bounced")
    run = WorkflowExecution.objects.get(workflow=on_click)
    assert run.status == WorkflowExecution.Status.COMPLETED
    assert run.context["link"] == "https://acme.test/"
    assert Contact.objects.get(pk=email.contact_id).data == {"hot": True}
    assert WorkflowExecution.objects.filter(workflow=on_bounce).count() == 1


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_opens_count_every_one_and_one_is_first(ann):
    email = sent_email(ann, "pm-race")
    run_at_once(lambda: apply_tracking(TrackingEvent(Kind.OPEN, "pm-race")), 8)
    email.refresh_from_db()
    assert email.opens == 8
    opens = events("email.open")
    assert sorted(e.data["opens"] for e in opens) == list(range(1, 9))
    assert [e.data["isFirstOpen"] for e in opens].count(True) == 1


# ---------------------------------------------------------------------------------------------
# Inbound


def reply(in_reply_to=None, references=None, sender="Bob <Bob@Example.com>", **kwargs):
    headers = [("Message-ID", "<reply-1@mail.example.com>")]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    if references:
        headers.append(("References", references))
    message = AnymailInboundMessage.construct(
        from_email=sender,
        to="hello@acme.test",
        cc="team@acme.test",
        subject="Re: Welcome",
        headers=headers,
        text=kwargs.pop("text", "Thanks!\x00\n\n\n\n> quoted"),
        html=kwargs.pop("html", None),
    )
    message.spam_detected = kwargs.pop("spam_detected", None)
    message.spam_score = kwargs.pop("spam_score", None)
    event = AnymailInboundEvent(event_type="inbound", timestamp=T0, message=message, **kwargs)
    inbound.send(sender=object, event=event, esp_name="Postmark")


def test_a_reply_records_email_received_for_the_sender(project, email):
    reply("<pm-0001>", spam_detected=False, spam_score=1.5)
    (event,) = events()
    bob = Contact.objects.get(project=project, email="bob@example.com")
    assert bob.subscribed is False  # a reply is no consent to marketing mail
    assert (event.name, event.contact_id, event.email_id) == ("email.received", bob.id, email.id)
    assert event.data == {
        "messageId": "reply-1@mail.example.com",
        "from": "bob@example.com",
        "fromHeader": "Bob <Bob@Example.com>",
        "to": "hello@acme.test",
        "subject": "Re: Welcome",
        "timestamp": "2024-01-15T10:30:00.000Z",
        "recipients": ["hello@acme.test", "team@acme.test"],
        "hasContent": True,
        "body": "Thanks!\n\n> quoted",
        "spamVerdict": "PASS",
        "spamScore": 1.5,
    }


def test_a_reply_keeps_an_existing_contacts_subscription(project, email, ann):
    reply("<pm-0001>", sender="ann@example.com", html="<p>Hi &amp; bye</p>", text="")
    ann.refresh_from_db()
    assert ann.subscribed is True
    (event,) = events()
    assert event.contact_id == ann.id
    assert event.data["body"] == "Hi & bye"
    assert "spamVerdict" not in event.data


def test_a_reply_matches_the_provider_id_inside_its_message_id_header(project, ann):
    sent = sent_email(ann, "0100018d0f5f-4a7c")  # Amazon SES: <id@email.amazonses.com>
    reply("<other@x>", references="<0100018d0f5f-4a7c@email.amazonses.com> <other@x>")
    (event,) = events()
    assert event.email_id == sent.id


def test_a_reply_matches_our_message_id_when_the_provider_reported_its_own(project, ann):
    """Our Message-ID is ``<email id@sender domain>``: a reply names it whatever id the
    provider reported back (stored as ``message_id``)."""
    sent = sent_email(ann, "b7e1-provider-id")
    reply(f"<{sent.id}@acme.test>")
    (event,) = events()
    assert event.email_id == sent.id


def test_a_reply_to_an_email_never_sent_writes_nothing(project, ann):
    pending = sent_email(ann, None)
    Email.objects.filter(pk=pending.pk).update(status=Email.Status.PENDING, sent_at=None)
    reply(f"<{pending.id}@acme.test>")
    assert events() == []


def test_an_inbound_message_answering_none_of_ours_writes_nothing(project, email):
    reply("<someone-else@example.org>")
    reply(None)
    assert events() == []
    assert list(Contact.objects.values_list("email", flat=True)) == ["ann@example.com"]


# ---------------------------------------------------------------------------------------------
# anymail's Postmark webhook over HTTP


def postmark_open(message_id: str) -> dict:
    """A Postmark "Open" webhook body, as in Postmark's documentation."""
    return {
        "RecordType": "Open",
        "MessageStream": "outbound",
        "Metadata": {},
        "FirstOpen": True,
        "Recipient": "ann@example.com",
        "MessageID": message_id,
        "ReceivedAt": "2024-01-15T10:30:00.1234567Z",
        "Platform": "WebMail",
        "ReadSeconds": 5,
        "Tag": "welcome",
        "UserAgent": "Mozilla/5.0",
        "OS": {"Name": "OS X 10.7 Lion", "Family": "OS X 10", "Company": "Apple Computer, Inc."},
        "Client": {"Name": "Chrome 35.0", "Family": "Chrome", "Company": "Google"},
        "Geo": {"CountryISOCode": "RS", "Country": "Serbia", "City": "Novi Sad"},
    }


def basic_auth(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_postmarks_open_webhook_records_email_open(sk, ann):
    message_id = str(uuid.uuid4())
    email = sent_email(ann, message_id)
    response = Client().post(
        "/anymail/postmark/tracking/",
        postmark_open(message_id),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth("tests:webhook-secret"),
    )
    assert response.status_code == 200
    (event,) = sk.get("/events", {"eventName": "email.open"}).json()["events"]
    assert event["emailId"] == str(email.id)
    assert event["contact"] == {"email": "ann@example.com"}
    assert event["data"]["openedAt"] == "2024-01-15T10:30:00.123Z"
    assert (event["data"]["opens"], event["data"]["isFirstOpen"]) == (1, True)


def test_a_webhook_without_the_secret_is_refused_and_writes_nothing(ann):
    sent_email(ann, "pm-auth")
    response = Client().post(
        "/anymail/postmark/tracking/",
        postmark_open("pm-auth"),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth("tests:wrong"),
    )
    assert response.status_code == 400
    assert events() == []


def test_connecting_again_does_not_count_twice(email):
    from plunk_events.anymail_signals import connect

    assert connect() is True
    fire("opened")
    email.refresh_from_db()
    assert email.opens == 1


def test_without_anymail_the_app_starts_and_connects_nothing():
    """anymail is an optional extra: a site without it starts, and no receiver is connected."""
    script = (
        "import sys; sys.modules['anymail'] = None\n"
        "import django; django.setup()\n"
        "from plunk_events import anymail_signals\n"
        "print(anymail_signals.connect())\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# What the internet and the providers send that the database cannot hold


def raw_reply(headers: str, body: str = "Thanks!") -> None:
    """An inbound message parsed from its raw text, as anymail's inbound webhooks do."""
    message = AnymailInboundMessage.parse_raw_mime(headers.replace("\n", "\r\n") + "\r\n" + body)
    event = AnymailInboundEvent(event_type="inbound", timestamp=T0, message=message)
    inbound.send(sender=object, event=event, esp_name="Postmark")


def test_control_characters_of_a_replys_headers_are_dropped(project, email):
    """Anyone can mail a reply, and RFC 2047 words decode to any character: PostgreSQL's jsonb
    refuses NUL, so the headers are cleaned as the body is (else every retry fails)."""
    raw_reply(
        "From: =?utf-8?q?Bo=00b?= <bob@example.com>\n"
        "To: hello@acme.test\n"
        "Subject: =?utf-8?q?Re=3A_Wel=00come=07?=\n"
        "Message-ID: <reply-nul@mail.example.com>\n"
        "In-Reply-To: <pm-0001>\n"
    )
    (event,) = events()
    assert (event.name, event.email_id) == ("email.received", email.id)
    assert event.data["subject"] == "Re: Welcome"
    assert event.data["fromHeader"] == "Bob <bob@example.com>"


@pytest.mark.parametrize("score", [float("nan"), float("inf"), "high"])
def test_a_spam_score_that_is_not_a_finite_number_is_left_out(project, email, score):
    """JSON has no NaN (PostgreSQL refuses it); some providers pass a header through as is."""
    reply("<pm-0001>", spam_score=score)
    (event,) = events()
    assert "spamScore" not in event.data


def test_a_message_id_the_database_cannot_hold_matches_nothing(ann):
    """A NUL in a provider's message id: no email has one (PostgreSQL cannot store it), so the
    webhook is answered 200 and nothing is written, rather than a 500 the provider retries."""
    sent_email(ann, "pm-nul")
    response = Client().post(
        "/anymail/postmark/tracking/",
        postmark_open("pm-nul\u0000"),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth("tests:webhook-secret"),
    )
    assert response.status_code == 200
    assert events() == []


def test_a_click_on_a_link_with_control_characters_is_recorded_without_them(email):
    fire("clicked", click_url="https://acme.test/a\u0000b")
    (event,) = events()
    assert event.data["link"] == "https://acme.test/ab"


def test_a_reply_with_a_malformed_cc_is_recorded_with_the_addresses_that_parse(project, email):
    """anymail raises on a header it cannot parse; a stray Cc must not make the webhook fail
    (the provider would retry it for hours, failing the same way each time)."""
    raw_reply(
        "From: Bob <bob@example.com>\n"
        "To: hello@acme.test\n"
        "Cc: team@acme.test, @@\n"
        "Subject: Re: Welcome\n"
        "In-Reply-To: <pm-0001>\n"
    )
    (event,) = events()
    assert event.data["from"] == "bob@example.com"
    assert event.data["recipients"] == ["hello@acme.test", "team@acme.test"]


@pytest.mark.parametrize("sender", ["undisclosed", "a@b@c", '"x" <>'])
def test_a_reply_from_an_address_that_does_not_parse_writes_nothing(project, email, sender):
    raw_reply(f"From: {sender}\nTo: hello@acme.test\nSubject: Re\nIn-Reply-To: <pm-0001>\n")
    assert events() == []
    assert list(Contact.objects.values_list("email", flat=True)) == ["ann@example.com"]


def refusing_event_inserts(error):
    """A database hook that refuses the INSERT of an event (what PostgreSQL does with a value
    it cannot store), standing for any failure of one webhook event."""
    table = Event._meta.db_table

    def wrapper(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and table in sql:
            raise error("the database refused the event")
        return execute(sql, params, many, context)

    return connection.execute_wrapper(wrapper)


def post_open(message_id: str):
    return Client().post(
        "/anymail/postmark/tracking/",
        postmark_open(message_id),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth("tests:webhook-secret"),
    )


def test_an_event_that_fails_for_good_is_logged_and_answered_200(email, caplog):
    """anymail turns a receiver's exception into a 500, which the provider retries with the
    whole batch (the batch's earlier events would count twice) and which fails the same way
    each time. A failure that a retry cannot cure is logged; the webhook answers 200, as
    Plunk's does, and the event writes nothing."""
    with refusing_event_inserts(DataError), caplog.at_level(logging.ERROR):
        response = post_open("pm-0001")
    assert response.status_code == 200
    email.refresh_from_db()
    assert (email.opens, email.status, events()) == (0, Email.Status.SENT, [])
    assert "email.open" in caplog.text and "not recorded" in caplog.text


def test_a_database_that_is_unavailable_makes_the_provider_retry(email):
    """An OperationalError (connection lost, lock timeout, serialisation failure) may pass:
    it propagates, anymail answers 500 and the provider posts the event again later."""
    with refusing_event_inserts(OperationalError), pytest.raises(OperationalError):
        post_open("pm-0001")
    email.refresh_from_db()
    assert (email.opens, events()) == (0, [])


def test_event_tracked_is_sent_for_the_events_from_the_mail(
    project, email, ann, django_capture_on_commit_callbacks
):
    """The README's ``event_tracked`` is sent for every recorded event after the commit, as
    for ``email.sent`` and track: a site mirroring events must see opens, bounces, replies."""
    tracked = []

    def on_tracked(sender, event, contact, created_contact, **kwargs):
        tracked.append((event.name, contact.email if contact else None, created_contact))

    signals.event_tracked.connect(on_tracked)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            fire("opened")
            fire("bounced")
            reply("<pm-0001>")
    finally:
        signals.event_tracked.disconnect(on_tracked)
    assert tracked == [
        ("email.open", "ann@example.com", False),
        ("email.bounce", "ann@example.com", False),
        (CONTACT_UNSUBSCRIBED, "ann@example.com", False),
        ("email.received", "bob@example.com", True),
    ]
