"""The SEND_EMAIL workflow step (plunk-engine.md §2.2): its config rules, the email it queues
for the contact or a custom recipient, the subscription rule of marketing mail, and the
``email.sent`` it leads to, which resumes a WAIT_FOR_EVENT like any event."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

import plunk_events
from plunk_events.models import Contact, Email, Event, Template
from plunk_events.services import workflow_graph, workflow_steps, workflows
from plunk_events.services.errors import ValidationFailed
from plunk_events.workflow_models import WorkflowExecution, WorkflowStepExecution

pytestmark = pytest.mark.django_db

Status = WorkflowExecution.Status


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PLUNK_EVENTS = {"PUBLIC_URL": "https://mail.example.com"}


def make_template(project, type=Template.Type.MARKETING, **fields):  # noqa: A002
    fields.setdefault("subject", "Order {{event.orderId}} for {{firstName ?? friend}}")
    fields.setdefault("body", "<p>Hi {{firstName}}: {{orderId}}</p>")
    return Template.objects.create(
        project=project, name=f"{type} mail", type=type, from_email="hi@acme.io", **fields
    )


@pytest.fixture
def marketing(project):
    return make_template(project)


@pytest.fixture
def transactional(project):
    return make_template(project, Template.Type.TRANSACTIONAL)


def send_step(template, **config):
    return {
        "type": "SEND_EMAIL",
        "name": "Mail",
        "config": {"templateId": str(template.pk), **config},
    }


def flow(project, *steps, name="Flow"):
    return workflows.create_workflow(
        project, name=name, event_name="ordered", enabled=True, steps=list(steps)
    )


def order(project, email, callbacks, subscribed=None, **data):
    """Track ``ordered`` and run everything it sets off after the commit (immediate backend)."""
    with callbacks(execute=True):
        plunk_events.track(project, email, "ordered", data=data or None, subscribed=subscribed)
    return Contact.objects.get(project=project, email=email)


def step_row(contact, step_type="SEND_EMAIL") -> WorkflowStepExecution:
    return WorkflowStepExecution.objects.get(contact=contact, step__type=step_type)


# ---------------------------------------------------------------------------------------------
# Config rules


def field_errors(refused) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in refused.value.errors]


def test_the_template_must_be_one_of_the_projects(project, other_project):
    theirs = make_template(other_project)
    with pytest.raises(ValidationFailed) as refused:
        flow(project, send_step(theirs))
    assert field_errors(refused) == [("steps.0.config.templateId", "custom")]
    assert "Template not found" in refused.value.errors[0]["message"]

    workflow = flow(project, {"type": "EXIT", "name": "End"})
    with pytest.raises(ValidationFailed) as refused:
        workflow_graph.add_step(project, workflow.pk, **send_step(theirs))
    assert field_errors(refused) == [("config.templateId", "custom")]


@pytest.mark.parametrize(
    ("recipient", "errors"),
    [
        ({"type": "TEAM"}, [("steps.0.config.recipient.type", "invalid_enum_value")]),
        ({"type": "CUSTOM"}, [("steps.0.config.recipient.customEmail", "invalid_type")]),
        (
            {"type": "CUSTOM", "customEmail": "no-at-sign"},
            [("steps.0.config.recipient.customEmail", "invalid_string")],
        ),
        ("CUSTOM", [("steps.0.config.recipient", "invalid_type")]),
    ],
)
def test_a_bad_recipient_is_refused(project, marketing, recipient, errors):
    with pytest.raises(ValidationFailed) as refused:
        flow(project, send_step(marketing, recipient=recipient))
    assert field_errors(refused) == errors


def test_a_valid_config_is_stored_with_the_custom_address_normalised(project, marketing):
    workflow = flow(
        project,
        send_step(marketing, recipient={"type": "CUSTOM", "customEmail": " Sales@Acme.io "}),
    )
    step = workflow.steps.get(type="SEND_EMAIL")
    assert step.config == {
        "templateId": str(marketing.pk),
        "recipient": {"type": "CUSTOM", "customEmail": "sales@acme.io"},
    }


# ---------------------------------------------------------------------------------------------
# Running


def test_the_step_queues_the_templates_email_to_the_contact(
    project, marketing, mailoutbox, django_capture_on_commit_callbacks
):
    flow(project, send_step(marketing), {"type": "EXIT", "name": "End"})
    ann = order(
        project, "ann@x.io", django_capture_on_commit_callbacks, subscribed=True, orderId="o-7"
    )

    execution = WorkflowExecution.objects.get(contact=ann)
    assert execution.status == Status.COMPLETED
    row = step_row(ann)
    email = Email.objects.get(step_execution=row)
    assert row.status == "COMPLETED"
    assert row.output == {
        "emailId": str(email.pk),
        "sentAt": email.created_at.isoformat().replace("+00:00", "Z"),
        "recipientType": "CONTACT",
        "recipientEmail": "ann@x.io",
        "status": "PENDING",  # queued in the step; sent by the task after its commit
    }
    assert (email.status, email.source, email.template_id) == ("SENT", "WORKFLOW", marketing.pk)
    [sent] = mailoutbox
    assert sent.subject == "Order o-7 for friend"
    assert sent.alternatives[0][0] == "<p>Hi : o-7</p>"
    assert sent.to == ["ann@x.io"]
    assert "List-Unsubscribe" in sent.message()  # marketing mail to the contact
    [event] = Event.objects.filter(contact=ann, name="email.sent")
    assert (event.email_id, event.data["sourceType"]) == (email.pk, "WORKFLOW")


def test_a_custom_recipient_gets_the_mail_with_the_override_header(
    project, marketing, mailoutbox, django_capture_on_commit_callbacks
):
    flow(
        project, send_step(marketing, recipient={"type": "CUSTOM", "customEmail": "sales@acme.io"})
    )
    # The contact is unsubscribed: that does not stop mail to someone else.
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks, subscribed=False)

    row = step_row(ann)
    assert row.output["recipientType"] == "CUSTOM"
    assert row.output["recipientEmail"] == "sales@acme.io"
    [sent] = mailoutbox
    assert sent.to == ["sales@acme.io"]
    mime = sent.message()
    assert mime["X-Plunk-Recipient-Override"] == "sales@acme.io"
    assert "List-Unsubscribe" not in mime  # the contact's link is not the recipient's
    assert Email.objects.get().contact_id == ann.pk


def test_marketing_mail_to_an_unsubscribed_contact_fails_and_the_run_goes_on(
    project, marketing, mailoutbox, django_capture_on_commit_callbacks
):
    flow(
        project,
        send_step(marketing),
        {"type": "UPDATE_CONTACT", "name": "Mark", "config": {"updates": {"after": True}}},
    )
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks, subscribed=False)

    row = step_row(ann)
    email = Email.objects.get(step_execution=row)
    assert (email.status, email.error) == ("FAILED", "Contact is unsubscribed")
    assert row.status == "COMPLETED"
    assert row.output["status"] == "FAILED" and row.output["sentAt"] is None
    assert WorkflowExecution.objects.get(contact=ann).status == Status.COMPLETED
    ann.refresh_from_db()
    assert ann.data["after"] is True
    assert not mailoutbox
    assert not Event.objects.filter(name="email.sent").exists()


def test_transactional_mail_goes_to_an_unsubscribed_contact(
    project, transactional, mailoutbox, django_capture_on_commit_callbacks
):
    flow(project, send_step(transactional))
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks, subscribed=False)

    email = Email.objects.get(step_execution=step_row(ann))
    assert (email.status, email.source) == ("SENT", "TRANSACTIONAL")
    assert len(mailoutbox) == 1
    assert "List-Unsubscribe" not in mailoutbox[0].message()


def test_a_deleted_template_fails_the_step_and_the_run(
    project, marketing, mailoutbox, django_capture_on_commit_callbacks
):
    flow(project, send_step(marketing))
    template_id = marketing.pk
    marketing.delete()
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks)

    row = step_row(ann)
    assert row.status == "FAILED"
    assert row.error == f"Template not found: {template_id}"
    assert WorkflowExecution.objects.get(contact=ann).status == Status.FAILED
    assert not Email.objects.exists() and not mailoutbox


def test_a_step_without_a_template_fails(project, django_capture_on_commit_callbacks):
    flow(project, {"type": "SEND_EMAIL", "name": "Draft"})
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks)
    assert step_row(ann).error == "SEND_EMAIL needs a templateId"


def test_a_step_run_again_queues_no_second_email(
    project, marketing, django_capture_on_commit_callbacks
):
    flow(project, send_step(marketing))
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks)
    row = step_row(ann)
    execution = row.execution
    with transaction.atomic():  # as a worker would, had the first run's move on been lost
        result = workflow_steps.run("default", execution, row.step, row)
    assert result.output["emailId"] == row.output["emailId"]
    assert Email.objects.count() == 1


def test_email_sent_resumes_a_wait_for_it(
    project, transactional, mailoutbox, django_capture_on_commit_callbacks
):
    """The send task runs after the run reached its wait, as from a queue: commit callbacks
    added by a callback run after it, so the run's advance (a callback of the track) waits
    first, then the step's send task delivers."""
    flow(
        project,
        send_step(transactional),
        {"type": "WAIT_FOR_EVENT", "name": "Sent?", "config": {"eventName": "email.sent"}},
        {"type": "UPDATE_CONTACT", "name": "Mark", "config": {"updates": {"mailed": True}}},
    )
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks)

    email = Email.objects.get()
    assert email.status == "SENT" and len(mailoutbox) == 1
    waiting = step_row(ann, "WAIT_FOR_EVENT")
    assert waiting.status == "COMPLETED"
    assert waiting.output["eventData"]["emailId"] == str(email.pk)
    assert WorkflowExecution.objects.get(contact=ann).status == Status.COMPLETED
    ann.refresh_from_db()
    assert ann.data["mailed"] is True


@pytest.mark.django_db(transaction=True)
def test_a_wait_right_after_the_send_sees_the_email_sent_recorded_before_it(project, mailoutbox):
    """Real commits on the immediate backend: the send task runs when the SEND_EMAIL step
    commits, so ``email.sent`` is recorded (and dispatched) before the wait exists. The wait
    finds it when it begins: it was recorded after the run's previous step ended."""
    transactional = make_template(project, Template.Type.TRANSACTIONAL)
    flow(
        project,
        send_step(transactional),
        {"type": "WAIT_FOR_EVENT", "name": "Sent?", "config": {"eventName": "email.sent"}},
        {"type": "UPDATE_CONTACT", "name": "Mark", "config": {"updates": {"mailed": True}}},
    )
    plunk_events.track(project, "ann@x.io", "ordered")

    ann = Contact.objects.get(project=project, email="ann@x.io")
    sent = Event.objects.get(contact=ann, name="email.sent")
    waiting = step_row(ann, "WAIT_FOR_EVENT")
    assert sent.created_at < waiting.started_at  # the event came first
    assert waiting.status == "COMPLETED" and waiting.output["outcome"] == "EVENT"
    assert waiting.output["eventData"]["emailId"] == str(sent.email_id)
    assert WorkflowExecution.objects.get(contact=ann).status == Status.COMPLETED
    assert ann.data == {"mailed": True}


def test_a_wait_does_not_take_an_event_recorded_before_the_run_reached_it(
    project, django_capture_on_commit_callbacks
):
    """Only events since the previous step ended count: an older ``email.sent`` of the
    contact does not end a new wait."""
    ann = Contact.objects.create(project=project, email="ann@x.io")
    Event.objects.create(project=project, contact=ann, name="email.sent")
    flow(
        project,
        {"type": "WAIT_FOR_EVENT", "name": "Sent?", "config": {"eventName": "email.sent"}},
    )
    order(project, "ann@x.io", django_capture_on_commit_callbacks)
    assert step_row(ann, "WAIT_FOR_EVENT").status == "WAITING"


def test_an_unknown_template_id_of_a_stored_step_fails_cleanly(
    project, django_capture_on_commit_callbacks
):
    workflow = flow(project, {"type": "EXIT", "name": "End"})
    step = workflow.steps.get(type="EXIT")
    step.type, step.config = "SEND_EMAIL", {"templateId": str(uuid.uuid4())}
    step.save()
    ann = order(project, "ann@x.io", django_capture_on_commit_callbacks)
    assert step_row(ann).error.startswith("Template not found")
