"""Unfinished delete jobs over HTTP (issue 7): ``usage.deletion``, the 409 of a second DELETE
while the worker lives, and writes or DELETEs that finish a job whose worker is gone."""

from __future__ import annotations

import pytest

from plunk_events.api.formatting import iso_timestamp
from plunk_events.models import Event, EventDeletion, Workflow
from tests.deletion_jobs import killed_job

from .helpers import TIMESTAMP, assert_error, track

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_batches(settings):
    settings.PLUNK_EVENTS = {"DELETE_BATCH_SIZE": 2}


def track_n(sk, name, n):
    for i in range(n):
        assert track(sk, {"email": f"u{i}@example.com", "event": name}).status_code == 200


def condition_on(name):
    return {
        "logic": "AND",
        "groups": [{"filters": [{"field": f"event.{name}", "operator": "triggered"}]}],
    }


def test_usage_has_no_deletion_without_a_job(sk):
    track_n(sk, "old", 1)
    body = sk.get("/events/old/usage").json()
    assert "deletion" not in body and body["canDelete"] is True


def test_usage_shows_a_live_job_and_a_second_delete_is_refused(sk, project):
    track_n(sk, "old", 5)
    job = killed_job(project, "old", batches=1, live=True)
    body = sk.get("/events/old/usage").json()
    assert body["deletion"] == {
        "status": "RUNNING",
        "deleted": 2,
        "startedAt": iso_timestamp(job.created_at),
    }
    assert TIMESTAMP.match(body["deletion"]["startedAt"])
    assert body["canDelete"] is False
    assert body["totalCount"] == 3

    response = sk.delete("/events/old")
    assert_error(
        response,
        409,
        "CONFLICT",
        'Event "old" is already being deleted by another worker',
        details={"eventName": "old", "deletion": body["deletion"]},
    )
    assert Event.objects.filter(project=project, name="old").count() == 3


def test_writes_naming_a_live_job_get_409_with_the_job(sk, project):
    track_n(sk, "old", 3)
    job = killed_job(project, "old", batches=1, live=True)
    response = sk.post("/segments", {"name": "s", "condition": condition_on("old")}, format="json")
    deletion = {
        "eventName": "old",
        "status": "RUNNING",
        "deleted": 2,
        "startedAt": iso_timestamp(job.created_at),
    }
    assert_error(
        response,
        409,
        "CONFLICT",
        'Event "old" is being deleted and cannot be referenced',
        details={"eventNames": ["old"], "deletions": [deletion]},
    )
    workflow = sk.post("/workflows", {"name": "w", "eventName": "old"}, format="json")
    assert workflow.status_code == 409
    assert Event.objects.filter(project=project, name="old").count() == 1


def test_a_segment_naming_an_abandoned_job_finishes_it(sk, project):
    track_n(sk, "old", 5)
    job = killed_job(project, "old", batches=1, live=False)
    body = sk.get("/events/old/usage").json()
    assert body["deletion"]["status"] == "ABANDONED"
    assert body["canDelete"] is True  # a DELETE would take the job over

    response = sk.post("/segments", {"name": "s", "condition": condition_on("old")}, format="json")
    assert response.status_code == 201, response.content
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 5)
    body = sk.get("/events/old/usage").json()
    assert "deletion" not in body
    assert (body["totalCount"], len(body["usedInSegments"])) == (0, 1)


def test_a_workflow_update_naming_an_abandoned_job_finishes_it(sk, project):
    track_n(sk, "old", 3)
    workflow = sk.post("/workflows", {"name": "w", "eventName": "fresh"}, format="json").json()
    killed_job(project, "old", batches=1, live=False)
    response = sk.patch(f"/workflows/{workflow['id']}", {"eventName": "old"}, format="json")
    assert response.status_code == 200, response.content
    assert Workflow.objects.get().trigger_config == {"eventName": "old"}
    assert not Event.objects.filter(project=project, name="old").exists()


def test_a_second_delete_finishes_an_abandoned_job(sk, project):
    track_n(sk, "old", 5)
    job = killed_job(project, "old", batches=2, live=False)
    track_n(sk, "old", 1)  # after the first request: the second one asks for it too
    assert sk.delete("/events/old").json() == {"deletedCount": 6}
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 6)
    assert "deletion" not in sk.get("/events/old/usage").json()
