"""Executions started by committed events (plunk_events.services.enrollment, the dispatcher's
``workflows`` consumer): every kind of event, exactly once per (workflow, event), the re-entry
rules, and nothing for events without a contact or disabled workflows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

import plunk_events
from plunk_events.models import Contact, Event, EventCursor, Segment
from plunk_events.services import contacts, dispatch, ingest, workflows
from plunk_events.services.validation import TrackInput
from plunk_events.workflow_models import WorkflowExecution
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db


def flow(project, event_name="signed_up", *, enabled=True, allow_reentry=False, steps=()):
    return workflows.create_workflow(
        project,
        name=f"On {event_name}",
        event_name=event_name,
        enabled=enabled,
        allow_reentry=allow_reentry,
        steps=list(steps),
    )


def runs(workflow) -> list[tuple[str, str]]:
    return list(
        WorkflowExecution.objects.filter(workflow=workflow)
        .order_by("started_at")
        .values_list("contact__email", "status")
    )


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks (the nudge, the runtime) of the writes inside the block."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_a_tracked_trigger_starts_a_run_that_completes(project, committed):
    welcome = flow(
        project,
        steps=[
            {"type": "UPDATE_CONTACT", "name": "Tag", "config": {"updates": {"welcomed": True}}}
        ],
    )
    with committed():
        plunk_events.track(project, "ann@x.io", "signed_up", data={"plan": "pro"})
    assert runs(welcome) == [("ann@x.io", "COMPLETED")]
    run = WorkflowExecution.objects.get(workflow=welcome)
    assert run.context == {"plan": "pro"}
    assert run.source_event_id == Event.objects.get(name="signed_up").pk
    assert Contact.objects.get(email="ann@x.io").data == {"plan": "pro", "welcomed": True}


def test_batch_events_start_runs_too(project, committed):
    welcome = flow(project)
    with committed():
        ingest.track_many(
            project,
            [
                TrackInput("a@x.io", "signed_up", None, None),
                TrackInput("b@x.io", "signed_up", None, None),
                TrackInput("c@x.io", "other", None, None),
            ],
        )
    assert sorted(email for email, _ in runs(welcome)) == ["a@x.io", "b@x.io"]


def test_system_events_start_runs(project, committed):
    on_unsubscribe = flow(project, "contact.unsubscribed")
    on_entry = flow(project, "segment.buyers.entry")
    Segment.objects.create(
        project=project,
        name="Buyers",
        track_membership=True,
        condition={
            "logic": "AND",
            "groups": [{"filters": [{"field": "event.purchase", "operator": "triggered"}]}],
        },
    )
    ann = Contact.objects.create(project=project, email="ann@x.io")
    with committed():
        contacts.update_contact(project, ann.pk, subscribed=False)
    with committed():
        plunk_events.track(project, "bob@x.io", "purchase")
    assert runs(on_unsubscribe) == [("ann@x.io", "COMPLETED")]
    assert runs(on_entry) == [("bob@x.io", "COMPLETED")]


def test_disabled_workflows_and_contactless_events_start_nothing(project, committed):
    disabled = flow(project, enabled=False)
    enabled = flow(project, "anonymous")
    Event.objects.create(project=project, name="anonymous")  # no contact
    with committed():
        plunk_events.track(project, "ann@x.io", "signed_up")
    dispatch.dispatch(project.pk)
    assert runs(disabled) == [] and runs(enabled) == []


def test_each_event_starts_a_run_once_however_often_it_is_dispatched(project, committed):
    welcome = flow(project, allow_reentry=True)
    with committed():
        plunk_events.track(project, "ann@x.io", "signed_up")
    for _ in range(3):
        dispatch.dispatch(project.pk)
    assert runs(welcome) == [("ann@x.io", "COMPLETED")]
    with committed():
        plunk_events.track(project, "ann@x.io", "signed_up")  # a new event: re-entry allowed
    assert len(runs(welcome)) == 2


def test_without_reentry_a_contact_enters_once(project, committed):
    welcome = flow(project)
    for _ in range(3):
        with committed():
            plunk_events.track(project, "ann@x.io", "signed_up")
    assert runs(welcome) == [("ann@x.io", "COMPLETED")]


def test_with_reentry_one_active_run_at_a_time(project, committed):
    waits = [{"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "done"}}]
    welcome = flow(project, allow_reentry=True, steps=waits)
    for _ in range(2):
        with committed():
            plunk_events.track(project, "ann@x.io", "signed_up")
    assert runs(welcome) == [("ann@x.io", "WAITING")]
    with committed():
        plunk_events.track(project, "ann@x.io", "done")
    with committed():
        plunk_events.track(project, "ann@x.io", "signed_up")
    assert runs(welcome) == [("ann@x.io", "COMPLETED"), ("ann@x.io", "WAITING")]


def test_an_event_is_read_again_until_it_settles(project, settings):
    """The cursor stays behind events younger than DISPATCH_SETTLE_SECONDS, so one that
    commits late (stamped before a newer one was dispatched) still starts its run."""
    settings.PLUNK_EVENTS = {"DISPATCH_SETTLE_SECONDS": 60}
    welcome = flow(project)
    ann = Contact.objects.create(project=project, email="ann@x.io")
    bob = Contact.objects.create(project=project, email="bob@x.io")
    now = timezone.now()
    Event.objects.create(project=project, contact=ann, name="signed_up", created_at=now)
    dispatch.dispatch(project.pk)
    # A transaction that stamped its event a second earlier commits only now.
    Event.objects.create(
        project=project, contact=bob, name="signed_up", created_at=now - timedelta(seconds=1)
    )
    dispatch.dispatch(project.pk)
    assert sorted(email for email, _ in runs(welcome)) == ["ann@x.io", "bob@x.io"]
    position = EventCursor.objects.get(project=project, consumer="workflows")
    assert position.created_at < now - timedelta(seconds=1)  # not past unsettled events


def test_a_workflow_enabled_later_starts_no_run_for_old_events(project, settings):
    flow(project, "other")  # something to dispatch for: the cursor exists and moves
    settings.PLUNK_EVENTS = {"DISPATCH_SETTLE_SECONDS": 60}
    dispatch.dispatch(project.pk)  # the cursor starts a minute back
    ann = Contact.objects.create(project=project, email="ann@x.io")
    Event.objects.create(
        project=project,
        contact=ann,
        name="signed_up",
        created_at=timezone.now() - timedelta(seconds=30),
    )
    settings.PLUNK_EVENTS = {"DISPATCH_SETTLE_SECONDS": 10}
    dispatch.dispatch(project.pk)  # nothing to read: the cursor moves to 10 s back
    welcome = flow(project)  # enabled now: the half-minute-old sign-up is history
    dispatch.dispatch(project.pk)
    assert runs(welcome) == []


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatches_start_one_run_per_event(project):
    welcome = flow(project)
    ann = Contact.objects.create(project=project, email="ann@x.io")
    for _ in range(5):
        Event.objects.create(project=project, contact=ann, name="signed_up")
    run_at_once(lambda: dispatch.dispatch(project.pk), 6)
    assert WorkflowExecution.objects.filter(workflow=welcome).count() == 1
