"""The dispatcher of new events (plunk_events.services.dispatch): per-project cursors read each
event once, nudges are coalesced per process on a deferring backend, and the segment consumer
re-evaluates the contacts of the events it reads."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

import plunk_events
from plunk_events.models import Contact, Event, EventCursor, Segment
from plunk_events.services import dispatch

pytestmark = pytest.mark.django_db

PRO = {
    "logic": "AND",
    "groups": [{"filters": [{"field": "event.upgrade", "operator": "triggered"}]}],
}


def tracked(project, name="Upgraded") -> Segment:
    return Segment.objects.create(project=project, name=name, condition=PRO, track_membership=True)


def upgrade(project, email: str) -> Event:
    """An event written without the ingest path: no nudge, only the dispatcher finds it."""
    contact = Contact.objects.create(project=project, email=email)
    return Event.objects.create(project=project, contact=contact, name="upgrade")


def members(segment: Segment) -> int:
    segment.refresh_from_db()
    return segment.member_count


def test_a_dispatch_reads_the_new_events_once_and_moves_the_cursor(project):
    segment = tracked(project)
    upgrade(project, "a@x.io")
    last = upgrade(project, "b@x.io")

    result = dispatch.dispatch(project.pk)["segments"]
    assert (result["events"], result["contacts"], result["entered"]) == (2, 2, 2)
    assert members(segment) == 2
    position = EventCursor.objects.get(project=project, consumer="segments")
    assert (position.created_at, position.event_id) == (last.created_at, last.id)

    # The two entry events are new events: read (and skipped: nothing reads segments), once.
    assert dispatch.dispatch(project.pk)["segments"]["events"] == 2
    assert dispatch.dispatch(project.pk)["segments"]["events"] == 0


def test_events_of_the_same_instant_are_ordered_by_id(project):
    tracked(project)
    at = timezone.now()
    contacts = [Contact.objects.create(project=project, email=f"{i}@x.io") for i in range(3)]
    events = [
        Event.objects.create(project=project, contact=c, name="upgrade", created_at=at)
        for c in contacts
    ]
    alias = "default"
    position = dispatch.cursor(alias, project.pk, "segments", at - timedelta(seconds=1))
    first = dispatch.events_after(alias, position, 2)
    assert [e.id for e in first] == sorted(e.id for e in events)[:2]
    assert dispatch.advance(alias, position, first[-1])
    rest = dispatch.events_after(alias, position, 10)
    assert [e.id for e in rest] == sorted(e.id for e in events)[2:]


def test_a_stale_cursor_does_not_move_back(project):
    tracked(project)
    upgrade(project, "a@x.io")
    later = upgrade(project, "b@x.io")
    alias = "default"
    start = timezone.now() - timedelta(minutes=1)
    mine = dispatch.cursor(alias, project.pk, "segments", start)
    theirs = EventCursor.objects.get(pk=mine.pk)
    events = dispatch.events_after(alias, theirs, 10)
    assert dispatch.advance(alias, theirs, events[-1])
    assert not dispatch.advance(alias, mine, events[0])  # compare-and-swap lost
    position = EventCursor.objects.get(pk=mine.pk)
    assert position.event_id == later.id


def test_a_first_dispatch_reads_back_one_recompute_interval(project, settings):
    settings.PLUNK_EVENTS = {"SEGMENT_RECOMPUTE_SECONDS": 600}
    segment = tracked(project)
    old = upgrade(project, "old@x.io")
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    upgrade(project, "new@x.io")
    assert dispatch.dispatch(project.pk)["segments"]["contacts"] == 1
    assert list(
        Contact.objects.filter(segment_memberships__segment=segment).values_list("email", flat=True)
    ) == ["new@x.io"]


def test_projects_without_tracked_segments_are_not_read(project):
    Segment.objects.create(project=project, name="Live", condition=PRO)
    upgrade(project, "a@x.io")
    assert dispatch.dispatch(project.pk)["segments"]["events"] == 0
    assert not EventCursor.objects.exists()
    assert dispatch.dispatch_all() == {"projects": 0}


def test_the_periodic_sweep_dispatches_lost_nudges(project, other_project):
    segment = tracked(project)
    tracked(other_project)
    upgrade(project, "a@x.io")
    assert dispatch.dispatch_all() == {"projects": 2}
    assert members(segment) == 1


def test_a_track_is_dispatched_inline_with_the_immediate_backend(
    project, django_capture_on_commit_callbacks
):
    segment = tracked(project)
    with django_capture_on_commit_callbacks(execute=True):
        plunk_events.track(project, "a@x.io", "upgrade")
    assert members(segment) == 1


def test_nudges_are_deferred_and_coalesced_per_project(project, other_project, deferring, settings):
    settings.PLUNK_EVENTS = {"DISPATCH_DELAY_SECONDS": 0.3}
    before = timezone.now()
    for _ in range(5):
        dispatch.nudge(str(project.pk))
    dispatch.nudge(str(other_project.pk))
    assert [r.args for r in deferring] == [[str(project.pk)], [str(other_project.pk)]]
    run_after = deferring[0].task.run_after
    assert before + timedelta(seconds=0.3) <= run_after <= timezone.now() + timedelta(seconds=0.3)

    time.sleep(0.35)  # the pending dispatch may have started: the next nudge needs its own
    dispatch.nudge(str(project.pk))
    assert len(deferring) == 3


def test_a_track_nudges_once_it_commits(project, deferring, django_capture_on_commit_callbacks):
    tracked(project)
    with django_capture_on_commit_callbacks() as callbacks:
        plunk_events.track(project, "a@x.io", "upgrade")
        assert deferring == []
    for callback in callbacks:
        callback()
    assert [r.task.name for r in deferring] == ["dispatch_events"]
