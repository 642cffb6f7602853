"""ReadReplicaRouter: reads of plunk_events go to READ_DATABASE when set; writes stay on default."""

from __future__ import annotations

import pytest
from django.db import router
from django.test import override_settings

from plunk_events.models import Event, Project
from plunk_events.services import ingest
from plunk_events.services.validation import parse_track


def test_without_a_replica_everything_uses_default():
    assert router.db_for_read(Event) == "default"
    assert router.db_for_write(Event) == "default"


@override_settings(PLUNK_EVENTS={"READ_DATABASE": "replica"})
def test_reads_go_to_the_replica_and_writes_to_default():
    assert router.db_for_read(Event) == "replica"
    assert router.db_for_read(Project) == "replica"
    assert router.db_for_write(Event) == "default"
    assert router.allow_migrate("replica", "plunk_events") is False
    assert router.allow_migrate("default", "plunk_events") is True


@pytest.mark.requires_postgres
@pytest.mark.django_db(databases=["default", "replica"], transaction=True)
@override_settings(PLUNK_EVENTS={"READ_DATABASE": "replica"})
def test_api_reads_through_the_replica(project, sk):
    from django.db import connections

    ingest.track(project, parse_track({"email": "r@example.com", "event": "seen"}))
    before = len(connections["replica"].queries_log)
    with override_settings(DEBUG=True):
        connections["replica"].force_debug_cursor = True
        response = sk.get("/events")
        connections["replica"].force_debug_cursor = False
    assert response.status_code == 200
    assert [e["name"] for e in response.json()["events"]] == ["seen"]
    # The key lookup and the event list were read on the replica connection.
    replica_sql = [q["sql"] for q in list(connections["replica"].queries_log)[before:]]
    assert any("plunk_events_event" in sql for sql in replica_sql)
