"""The segment engine through the HTTP API alone, with the configured backend's real worker:
tracked purchases make contacts enter a tracked segment within 2 s (entry events, count,
contacts), and a contact change makes one leave (one exit event).

``make test`` runs it with the immediate backend (the re-evaluation runs at the commit); CI
runs it with the db and rq workers too (``PLUNK_TASKS_BACKEND``).
"""

from __future__ import annotations

import pytest

from plunk_events.models import Contact
from plunk_events.services.projects import create_project
from plunk_events.tasks import enqueue_on_commit

from .tasks import record

pytestmark = pytest.mark.engine

RECENT_BUYERS = {
    "logic": "AND",
    "groups": [
        {
            "filters": [
                {
                    "field": "event.purchase",
                    "operator": "triggeredWithin",
                    "value": 7,
                    "unit": "days",
                },
                {"field": "subscribed", "operator": "equals", "value": True},
            ]
        }
    ],
}


def test_tracked_segment_follows_tracks_and_contact_changes(task_worker, client_for):
    project = create_project("Segment engine")
    sk, pk = client_for(project.secret_key), client_for(project.public_key)
    task_worker.start()
    # The worker is up once it ran a task: the 2 s below are the engine's, not its start-up.
    enqueue_on_commit(record, str(project.pk), "warm-up")
    task_worker.wait_until(
        lambda: Contact.objects.filter(project=project).exists(), timeout=60, what="the worker"
    )

    created = sk.post(
        "/segments",
        {"name": "Recent Purchasers", "condition": RECENT_BUYERS, "trackMembership": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    segment = created.json()
    buyers = ["ann@shop.test", "bob@shop.test", "cy@shop.test"]
    for email in buyers:
        response = pk.post("/v1/track", {"email": email, "event": "purchase"}, format="json")
        assert response.status_code == 200, response.content

    def member_count():
        return sk.get(f"/segments/{segment['id']}").json()["memberCount"] == 3

    def entries(kind="entry"):
        response = sk.get("/events", {"eventName": f"segment.recent-purchasers.{kind}"})
        return response.json()["events"]

    task_worker.wait_until(member_count, timeout=2, what="memberCount 3")
    listed = sk.get(f"/segments/{segment['id']}/contacts").json()
    assert sorted(c["email"] for c in listed["data"]) == buyers
    assert listed["total"] == 3
    task_worker.wait_until(lambda: len(entries()) == 3, timeout=2, what="three entry events")
    assert sorted(e["contact"]["email"] for e in entries()) == buyers
    assert {e["data"]["segmentId"] for e in entries()} == {segment["id"]}

    bob = Contact.objects.get(project=project, email="bob@shop.test")
    assert sk.patch(f"/contacts/{bob.pk}", {"subscribed": False}, format="json").status_code == 200
    task_worker.wait_until(lambda: len(entries("exit")) == 1, timeout=2, what="one exit event")
    assert entries("exit")[0]["contactId"] == str(bob.pk)
    assert sk.get(f"/segments/{segment['id']}").json()["memberCount"] == 2
    assert len(entries()) == 3  # no entry recorded twice
