"""The statements ``POST /v1/track`` sends: the key lookup, the contact upsert, and (on
PostgreSQL) one statement that updates the contact and inserts the events.

Tests run inside a transaction, so the track's own transaction shows up as a SAVEPOINT pair;
those are left out of the count (in production they are the BEGIN/COMMIT)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db


def statements(pk, **body) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = pk.post(
            "/v1/track", {"email": "hot@example.com", "event": "x", **body}, format="json"
        )
    assert response.status_code == 200
    # Only the app's statements: not the SAVEPOINT pair, nor a session SET of a new connection.
    return [q["sql"] for q in captured.captured_queries if "plunk_events_" in q["sql"]]


def test_track_of_a_new_contact(pk):
    sqls = statements(pk, data={"plan": "pro"})
    assert len(sqls) == 3, sqls  # key lookup, contact upsert, event insert
    assert "ORDER BY" not in sqls[0]
    assert "ON CONFLICT" in sqls[1]


def test_track_of_an_existing_contact_whose_data_changes(pk):
    statements(pk, data={"plan": "free"})
    sqls = statements(pk, data={"plan": "pro"}, subscribed=False)
    if connection.vendor == "postgresql":
        assert len(sqls) == 3, sqls  # two round trips after the key lookup
        assert sqls[-1].startswith("WITH u AS (UPDATE")
    else:
        assert len(sqls) == 4, sqls  # SQLite has no DML in WITH: UPDATE, then INSERT


def test_track_of_an_unchanged_contact_skips_the_update(pk):
    statements(pk, data={"plan": "pro"})
    sqls = statements(pk, data={"plan": "pro"})
    assert len(sqls) == 3, sqls
    assert not any(s.startswith("UPDATE") for s in sqls)


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
        # key lookup, one upsert for all contacts, one update for all, one insert for all events
        assert len(sqls) == 4, [s[:60] for s in sqls]
    else:
        assert len(sqls) == 3 + 50  # SQLite updates contact by contact, in-process
