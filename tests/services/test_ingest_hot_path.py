"""The statements ``POST /v1/track`` sends. On PostgreSQL: the key lookup and one statement
that upserts the contact and inserts the events. Elsewhere (and on PostgreSQL with an
Idempotency-Key or a signal receiver): the key lookup, the contact upsert, and the write of the
merged contact with the events.

Tests run inside a transaction, so the track's own transaction shows up as a SAVEPOINT pair;
those are left out of the count (in production they are the BEGIN/COMMIT)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from plunk_events.models import Event

# The key lookup is counted: switch off the per-process key cache that would skip it.
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("no_key_cache"),
]


@pytest.fixture
def no_key_cache(settings):
    settings.PLUNK_EVENTS = {"API_KEY_CACHE_SECONDS": 0}


def statements(pk, **body) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = pk.post(
            "/v1/track", {"email": "hot@example.com", "event": "x", **body}, format="json"
        )
    assert response.status_code == 200
    # Only the app's statements: not the SAVEPOINT pair, nor a session SET of a new connection.
    return [q["sql"] for q in captured.captured_queries if "plunk_events_" in q["sql"]]


ONE_STATEMENT = connection.vendor == "postgresql"


def test_track_of_a_new_contact(pk):
    sqls = statements(pk, data={"plan": "pro"})
    assert "ORDER BY" not in sqls[0]
    if ONE_STATEMENT:
        assert len(sqls) == 2, sqls
        assert sqls[1].lstrip().startswith("WITH old AS")
    else:
        assert len(sqls) == 3, sqls  # key lookup, contact upsert, event insert
        assert "ON CONFLICT" in sqls[1]


def test_track_of_an_existing_contact_whose_data_changes(pk):
    statements(pk, data={"plan": "free"})
    sqls = statements(pk, data={"plan": "pro"}, subscribed=False)
    assert len(sqls) == (2 if ONE_STATEMENT else 4), sqls  # SQLite: upsert, UPDATE, INSERT


def test_track_of_an_unchanged_contact_skips_the_update(pk):
    statements(pk, data={"plan": "pro"})
    sqls = statements(pk, data={"plan": "pro"})
    assert len(sqls) == (2 if ONE_STATEMENT else 3), sqls
    assert not any(s.startswith("UPDATE") for s in sqls)


@pytest.mark.requires_postgres
def test_with_an_idempotency_key_postgresql_takes_the_two_round_trip_path(pk):
    statements(pk, data={"plan": "free"})
    with CaptureQueriesContext(connection) as captured:
        response = pk.post(
            "/v1/track",
            {"email": "hot@example.com", "event": "x", "data": {"plan": "pro"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k1",
        )
    assert response.status_code == 200
    sqls = [q["sql"] for q in captured.captured_queries if "plunk_events_" in q["sql"]]
    # key lookup, idempotency pre-check, claim, contact upsert, contact update, event insert
    assert len(sqls) == 6, [s[:50] for s in sqls]
    assert sqls[-2].startswith('UPDATE "plunk_events_contact" AS c')


def test_batch_statements_do_not_grow_with_items(pk):
    def batch(n, plan):
        body = {
            "events": [
                {"email": f"u{i % 50}@example.com", "event": "x", "data": {"plan": plan, "i": i}}
                for i in range(n)
            ]
        }
        with CaptureQueriesContext(connection) as captured:
            response = pk.post("/v1/track/batch", body, format="json")
        assert response.status_code == 200
        assert response.json()["accepted"] == n
        return [q["sql"] for q in captured.captured_queries if "plunk_events_" in q["sql"]]

    batch(100, "free")  # creates the 50 contacts
    sqls = batch(100, "pro")  # 50 existing contacts, each changed twice
    if connection.vendor == "postgresql":
        # key lookup, one upsert for all contacts, one update for all; the events go in with
        # COPY, which Django does not log (their count is checked below).
        assert len(sqls) == 3, [s[:60] for s in sqls]
        assert sqls[1].startswith('INSERT INTO "plunk_events_contact"')
        assert sqls[2].startswith('UPDATE "plunk_events_contact" AS c')
    else:
        assert len(sqls) == 3 + 50  # SQLite updates contact by contact, in-process
    assert Event.objects.filter(data__plan="pro").count() == 100
