"""Delete by name runs in bounded batches, spares events tracked after the request, resumes
after an interruption, and cannot be raced by a new reference (issue 4)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from plunk_events.models import Contact, Event, EventDailyCount, EventDeletion, EventNameTotal
from plunk_events.services import deletion, ingest, rollups
from plunk_events.services.errors import Conflict
from plunk_events.services.references import guard_new_references
from plunk_events.services.validation import parse_track

SMALL_BATCHES = override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 3})


def add_events(project, name, n, *, days_ago=0):
    contact, _ = Contact.objects.get_or_create(project=project, email="d@example.com")
    at = datetime.now(UTC) - timedelta(days=days_ago)
    Event.objects.bulk_create(
        [Event(project=project, contact=contact, name=name, created_at=at) for _ in range(n)]
    )


@pytest.mark.django_db
@SMALL_BATCHES
def test_deletes_in_batches_and_keeps_other_names(project, other_project):
    add_events(project, "old", 10)
    add_events(project, "keep", 2)
    add_events(other_project, "old", 4)
    batches = []
    job = deletion.start_deletion(project, "old")
    assert deletion.run_deletion(job, on_batch=batches.append) == 10
    assert batches == [3, 3, 3, 1]
    assert not Event.objects.filter(project=project, name="old").exists()
    assert Event.objects.filter(project=project, name="keep").count() == 2
    assert Event.objects.filter(project=other_project, name="old").count() == 4
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 10)
    assert job.finished_at is not None


@pytest.mark.django_db
@SMALL_BATCHES
def test_events_tracked_after_the_request_survive(project):
    add_events(project, "old", 5, days_ago=1)
    job = deletion.start_deletion(project, "old")
    later = ingest.track(project, parse_track({"email": "n@example.com", "event": "old"}))
    assert deletion.run_deletion(job) == 5
    assert list(Event.objects.filter(project=project, name="old").values_list("id", flat=True)) == [
        later.event_id
    ]
    assert rollups.event_counts(project)["old"] == 1


@pytest.mark.django_db
@SMALL_BATCHES
def test_interrupted_deletion_resumes(project):
    add_events(project, "old", 8)
    job = deletion.start_deletion(project, "old")

    def crash_after_first_batch(count):
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        deletion.run_deletion(job, on_batch=crash_after_first_batch)
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.RUNNING, 3)
    assert Event.objects.filter(project=project, name="old").count() == 5
    # The failing worker gave its lease up, so the job is resumable at once.
    assert (job.owner, job.lease_expires_at, job.worker_alive()) == ("", None, False)
    call_command("plunk_resume_deletions")
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 8)
    assert not Event.objects.filter(project=project, name="old").exists()


@pytest.mark.django_db
def test_a_name_being_deleted_cannot_gain_a_reference(project):
    add_events(project, "old", 2)
    deletion.start_deletion(project, "old")
    with pytest.raises(Conflict) as refused:
        guard_new_references(project, {"old", "other"})
    assert refused.value.details["eventNames"] == ["old"]
    assert refused.value.details["deletions"] == [
        {
            "eventName": "old",
            "status": "RUNNING",
            "deleted": 0,
            "startedAt": EventDeletion.objects.get().created_at,
        }
    ]
    guard_new_references(project, {"other"})  # unrelated names are fine


@pytest.mark.django_db
def test_rollup_rows_of_a_deleted_name_go_too(project):
    add_events(project, "old", 4, days_ago=3)
    add_events(project, "keep", 1, days_ago=3)
    rollups.rollup(project)
    assert EventNameTotal.objects.filter(project=project, name="old").exists()
    assert deletion.delete_events_by_name(project, "old") == 4
    assert not EventDailyCount.objects.filter(project=project, name="old").exists()
    assert not EventNameTotal.objects.filter(project=project, name="old").exists()
    assert rollups.event_names(project) == ["keep"]


@pytest.mark.django_db
def test_delete_command_applies_the_guard(project):
    add_events(project, "old", 2)
    call_command("plunk_delete_events", "old", project=project.name)
    assert not Event.objects.filter(project=project, name="old").exists()
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="reserved system event"):
        call_command("plunk_delete_events", "email.open", project=str(project.pk))


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 50})
def test_ingest_keeps_working_during_a_large_delete(project):
    add_events(project, "old", 3000, days_ago=1)
    tracked = []
    stop = threading.Event()

    def keep_tracking():
        try:
            while not stop.is_set():
                result = ingest.track(
                    project, parse_track({"email": f"u{len(tracked)}@x.io", "event": "old"})
                )
                tracked.append(result.event_id)
        finally:
            connection.close()

    worker = threading.Thread(target=keep_tracking)
    worker.start()
    try:
        deleted = deletion.delete_events_by_name(project, "old")
    finally:
        stop.set()
        worker.join()
    survivors = set(Event.objects.filter(project=project, name="old").values_list("id", flat=True))
    assert tracked, "ingest made no progress during the delete"
    # Every event tracked after the request began survives; all older ones are gone.
    assert deleted + len(survivors) == 3000 + len(tracked)
    assert survivors <= set(tracked)
    assert rollups.event_counts(project)["old"] == len(survivors)


@pytest.mark.django_db
def test_a_repeated_delete_after_an_interruption_takes_newer_events_too(project, sk):
    add_events(project, "old", 2, days_ago=1)
    job = deletion.start_deletion(project, "old")  # a request that died before deleting anything
    EventDeletion.objects.filter(pk=job.pk).update(lease_expires_at=job.created_at)  # it's gone
    ingest.track(project, parse_track({"email": "late@example.com", "event": "old"}))
    response = sk.delete("/events/old")
    assert response.json() == {"deletedCount": 3}
    assert not Event.objects.filter(project=project, name="old").exists()


@pytest.mark.django_db
def test_a_name_longer_than_any_event_deletes_nothing(project, sk):
    response = sk.delete("/events/" + "n" * 300)
    assert (response.status_code, response.json()) == (200, {"deletedCount": 0})
    assert not EventDeletion.objects.exists()
    refused = sk.delete("/events/email." + "n" * 300)
    assert refused.status_code == 400


@pytest.mark.django_db
def test_deleting_a_contact_takes_its_events_out_of_names_and_stats(project, sk):
    add_events(project, "gone", 2, days_ago=5)  # contact d@example.com
    other, _ = Contact.objects.get_or_create(project=project, email="o@example.com")
    Event.objects.create(project=project, contact=other, name="kept")
    rollups.rollup(project)
    contact = Contact.objects.get(project=project, email="d@example.com")
    assert sk.delete(f"/contacts/{contact.pk}").status_code == 204
    assert sk.get("/events/names").json() == {"eventNames": ["kept"]}
    assert sk.get("/events/stats").json() == [{"name": "kept", "count": 1}]
    assert not EventDailyCount.objects.filter(project=project, name="gone").exists()


@pytest.mark.django_db
@override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 400, "DELETE_BATCH_SECONDS": 1e-9})
def test_slow_batches_shrink_to_keep_transactions_short(project):
    add_events(project, "old", 1000)
    batches = []
    job = deletion.start_deletion(project, "old")
    assert deletion.run_deletion(job, on_batch=batches.append) == 1000
    assert batches == [400, 200, 100, 100, 100, 100, 0]
