"""Delete jobs run under a worker lease: an abandoned job (its worker killed) is visible and is
taken over by the next DELETE, a write naming it, or ``plunk_resume_deletions``; a live one is
never run twice (issue 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from plunk_events.api.formatting import iso_timestamp
from plunk_events.models import Contact, Event, EventDeletion
from plunk_events.services import automation, deletion, rollups, workflows
from plunk_events.services.errors import Conflict
from tests.concurrency import run_at_once
from tests.deletion_jobs import killed_job

ROOT = Path(__file__).resolve().parents[2]
SMALL_BATCHES = override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 3})


def add_events(project, name, n):
    contact, _ = Contact.objects.get_or_create(project=project, email="d@example.com")
    at = datetime.now(UTC) - timedelta(days=1)
    Event.objects.bulk_create(
        [Event(project=project, contact=contact, name=name, created_at=at) for _ in range(n)]
    )


def remaining(project, name) -> int:
    return Event.objects.filter(project=project, name=name).count()


def segment_on(project, name):
    return automation.create_segment(project, name=f"uses {name}", condition=condition_on(name))


def condition_on(name):
    return {
        "logic": "AND",
        "groups": [{"filters": [{"field": f"event.{name}", "operator": "triggered"}]}],
    }


@pytest.mark.django_db
@SMALL_BATCHES
def test_every_batch_renews_the_lease_of_its_worker(project):
    add_events(project, "old", 10)
    job = deletion.start_deletion(project, "old")
    assert job.worker_alive() and len(job.owner) == 32
    seen = []

    def look(deleted):
        row = EventDeletion.objects.get(pk=job.pk)
        seen.append((row.owner, row.deleted_count, row.heartbeat_at, row.lease_expires_at))

    with override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 3, "DELETE_LEASE_SECONDS": 7}):
        assert deletion.run_deletion(job, on_batch=look) == 10
    assert [s[0] for s in seen] == [job.owner] * 4
    assert [s[1] for s in seen] == [3, 6, 9, 10]
    heartbeats = [s[2] for s in seen]
    assert heartbeats == sorted(heartbeats)
    assert all(expires - beat == timedelta(seconds=7) for _, _, beat, expires in seen)
    job.refresh_from_db()
    assert (job.status, job.owner, job.lease_expires_at) == (EventDeletion.Status.DONE, "", None)
    assert not job.worker_alive()


@pytest.mark.django_db
@SMALL_BATCHES
def test_a_second_delete_is_refused_while_the_worker_lives(project):
    add_events(project, "old", 10)
    job = killed_job(project, "old", batches=1, live=True)
    with pytest.raises(Conflict) as refused:
        deletion.delete_events_by_name(project, "old")
    assert refused.value.status_code == 409
    assert refused.value.details == {
        "eventName": "old",
        "deletion": {
            "status": "RUNNING",
            "deleted": 3,
            "startedAt": job.created_at,
        },
    }
    # Nothing moved: no second deleter, the same cutoff, the same owner.
    fresh = EventDeletion.objects.get(pk=job.pk)
    assert (fresh.owner, fresh.cutoff, fresh.deleted_count) == ("dead-worker", job.cutoff, 3)
    assert remaining(project, "old") == 7


@pytest.mark.django_db
@SMALL_BATCHES
def test_a_second_delete_finishes_an_abandoned_job(project):
    add_events(project, "old", 10)
    job = killed_job(project, "old", batches=2)
    assert remaining(project, "old") == 4
    assert deletion.delete_events_by_name(project, "old") == 10
    job.refresh_from_db()
    assert (job.status, job.deleted_count, job.owner) == (EventDeletion.Status.DONE, 10, "")
    assert job.cutoff > job.created_at  # the new request asked for everything up to now
    assert remaining(project, "old") == 0
    assert EventDeletion.objects.count() == 1


@pytest.mark.django_db
@SMALL_BATCHES
def test_a_write_naming_an_abandoned_job_finishes_it_and_goes_ahead(project):
    add_events(project, "old", 10)
    job = killed_job(project, "old", batches=1)
    segment = segment_on(project, "old")
    assert segment.pk is not None
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 10)
    assert remaining(project, "old") == 0
    assert rollups.event_usage(project, "old").deletion is None


@pytest.mark.django_db
@SMALL_BATCHES
def test_a_write_naming_a_live_job_is_refused_and_touches_nothing(project):
    add_events(project, "live", 6)
    add_events(project, "dead", 6)
    live = killed_job(project, "live", batches=1, live=True)
    dead = killed_job(project, "dead", batches=1)
    steps = [{"type": "WAIT_FOR_EVENT", "name": "w", "config": {"eventName": "live"}}]
    with pytest.raises(Conflict) as refused:
        workflows.create_workflow(project, name="wf", event_name="dead", steps=steps)
    assert refused.value.details["eventNames"] == ["dead", "live"]
    assert [(d["eventName"], d["status"]) for d in refused.value.details["deletions"]] == [
        ("dead", "ABANDONED"),
        ("live", "RUNNING"),
    ]
    # The write could not go ahead anyway, so the abandoned job is left for the next DELETE.
    for job in (live, dead):
        job.refresh_from_db()
        assert (job.status, job.deleted_count) == (EventDeletion.Status.RUNNING, 3)
    assert (remaining(project, "live"), remaining(project, "dead")) == (3, 3)


@pytest.mark.django_db
@SMALL_BATCHES
def test_a_job_from_before_the_lease_counts_as_abandoned(project):
    """Jobs recorded before migration 0003 have no lease at all."""
    add_events(project, "old", 4)
    EventDeletion.objects.create(project=project, name="old", cutoff=timezone.now())
    assert rollups.event_usage(project, "old").as_dict()["deletion"]["status"] == "ABANDONED"
    segment_on(project, "old")
    assert remaining(project, "old") == 0


@pytest.mark.django_db
@SMALL_BATCHES
def test_resume_command_takes_only_abandoned_jobs_unless_forced(project, capsys):
    add_events(project, "live", 6)
    add_events(project, "dead", 6)
    live = killed_job(project, "live", batches=1, live=True)
    dead = killed_job(project, "dead", batches=1)
    call_command("plunk_resume_deletions")
    assert capsys.readouterr().out == "dead: 6 events deleted\n1 job(s) finished\n"
    live.refresh_from_db()
    dead.refresh_from_db()
    assert (live.status, dead.status) == (EventDeletion.Status.RUNNING, EventDeletion.Status.DONE)
    call_command("plunk_resume_deletions", "--force")
    assert capsys.readouterr().out == "live: 6 events deleted\n1 job(s) finished\n"
    assert not Event.objects.filter(project=project).exists()


@pytest.mark.django_db
@SMALL_BATCHES
def test_a_worker_whose_job_was_taken_over_stops_without_counting_twice(project):
    """A stalled worker that outlived its lease: the new owner finishes the job, and the stalled
    one's next batch finds the lease gone, rolls back and reports 409."""
    add_events(project, "old", 10)
    job = deletion.start_deletion(project, "old")
    taken = []

    def stall_then_wake(deleted):
        if not taken:
            taken.append(deletion.resume_deletions(force=True))

    with pytest.raises(Conflict) as lost:
        deletion.run_deletion(job, on_batch=stall_then_wake)
    assert lost.value.status_code == 409
    assert [j.pk for j in taken[0]] == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 10)
    assert remaining(project, "old") == 0


@pytest.mark.django_db
def test_running_a_job_someone_else_holds_is_refused(project):
    add_events(project, "old", 2)
    job = deletion.start_deletion(project, "old")
    stale_copy = EventDeletion.objects.get(pk=job.pk)  # has the owner's token, not its claim
    with pytest.raises(Conflict):
        deletion.run_deletion(stale_copy)
    assert remaining(project, "old") == 2
    assert deletion.run_deletion(job) == 2


# ---------------------------------------------------------------------------------------------
# Concurrency (PostgreSQL: real row locks between real connections)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 20})
def test_concurrent_resumers_delete_exactly_once_and_count_exactly(project):
    add_events(project, "old", 2000)
    job = killed_job(project, "old", batches=3)
    start = threading.Barrier(6)
    outcomes: list = []

    def resume():
        try:
            start.wait()
            outcomes.append(("resume", deletion.resume_deletion(job)))
        finally:
            connection.close()

    def delete():
        try:
            start.wait()
            outcomes.append(("delete", deletion.delete_events_by_name(project, "old")))
        except Conflict as exc:
            outcomes.append(("delete", exc))
        finally:
            connection.close()

    def write():
        try:
            start.wait()
            outcomes.append(("write", segment_on(project, "old")))
        except Conflict as exc:
            outcomes.append(("write", exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=fn) for fn in (resume, resume, delete, delete, write)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 5
    assert remaining(project, "old") == 0
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 2000)
    # Exactly one worker ran the old job; any later DELETE found nothing left to delete.
    resumed = [r for kind, r in outcomes if kind == "resume" and r is not None]
    assert len(resumed) <= 1
    assert sum(j.deleted_count for j in EventDeletion.objects.all()) == 2000
    assert not EventDeletion.objects.filter(status=EventDeletion.Status.RUNNING).exists()


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 20})
def test_two_resumers_of_one_job_claim_it_once(project):
    add_events(project, "old", 1000)
    job = killed_job(project, "old", batches=1)
    results = run_at_once(lambda: deletion.resume_deletion(job), 2)
    claimed = [r for r in results if r is not None]
    assert len(claimed) == 1 and claimed[0].deleted_count == 1000
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 1000)
    assert remaining(project, "old") == 0


# ---------------------------------------------------------------------------------------------
# A real worker process killed with SIGKILL in the middle of its job

DELETER = """
import sys, time
import django
django.setup()
from django.test import override_settings
override_settings(PLUNK_EVENTS={
    "DELETE_BATCH_SIZE": 5, "DELETE_BATCH_SECONDS": 60, "DELETE_LEASE_SECONDS": 1,
}).enable()
from plunk_events.models import Project
from plunk_events.services import deletion, rollups
from tests.deletion_jobs import LONG_AGO, Killed, killed_job
from tests.concurrency import run_at_once
job = deletion.start_deletion(Project.objects.get(pk=sys.argv[1]), sys.argv[2])
def progress(deleted):
    print(deleted, flush=True)
    time.sleep(0.05)
deletion.run_deletion(job, on_batch=progress)
print("finished", flush=True)
"""


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{auth}@{settings['HOST']}:{settings['PORT'] or 5432}/{settings['NAME']}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_is_taken_over(project, sk):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("another process cannot open an in-memory SQLite database")
    add_events(project, "old", 200)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url()}
    worker = subprocess.Popen(
        [sys.executable, "-c", DELETER, str(project.pk), "old"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        batches = [worker.stdout.readline().strip() for _ in range(3)]
        assert batches == ["5", "5", "5"]
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(timeout=30)
        worker.stdout.close()
    assert worker.returncode == -signal.SIGKILL

    job = EventDeletion.objects.get(project=project, name="old")
    # Every committed batch counted, nothing else: the count matches what is gone.
    assert job.status == EventDeletion.Status.RUNNING
    assert job.deleted_count >= 15
    assert job.deleted_count == 200 - remaining(project, "old")
    # Killed moments ago, its lease (1 second) still runs: seen as running, a DELETE refused.
    usage = sk.get("/events/old/usage").json()
    if job.worker_alive():
        assert usage["deletion"]["status"] == "RUNNING" and usage["canDelete"] is False
        assert sk.delete("/events/old").status_code == 409
    while job.worker_alive():
        time.sleep(0.1)
        job.refresh_from_db()
    usage = sk.get("/events/old/usage").json()
    assert usage["deletion"] == {
        "status": "ABANDONED",
        "deleted": job.deleted_count,
        "startedAt": iso_timestamp(job.created_at),
    }
    assert usage["canDelete"] is True
    response = sk.post("/segments", {"name": "s", "condition": condition_on("old")}, format="json")
    assert response.status_code == 201, response.content
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 200)
    assert remaining(project, "old") == 0
    assert "deletion" not in sk.get("/events/old/usage").json()
