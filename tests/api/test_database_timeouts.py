"""example_project's PostgreSQL timeouts turn a stuck database into a prompt 503 that wrote nothing.

The connection is configured with the OPTIONS example_project builds from its environment, then a
second connection holds the contact's row lock so the track waits on it, as it would behind a
stuck transaction.
"""

from __future__ import annotations

import importlib
import time

import psycopg
import pytest
from django.db import connection

from plunk_events.models import Contact, Event

from .helpers import assert_error, track

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]


def example_options(monkeypatch, **env: str) -> dict:
    """DATABASES["default"]["OPTIONS"] of example_project for this environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    import example_project.settings as example

    return importlib.reload(example).DATABASES["default"]["OPTIONS"]


@pytest.fixture
def configure(monkeypatch):
    """Reconnect the test database with example_project's OPTIONS; restored afterwards."""
    saved = connection.settings_dict["OPTIONS"]

    def apply(**env: str) -> dict:
        options = example_options(monkeypatch, **env)
        connection.close()
        connection.settings_dict["OPTIONS"] = {**saved, **options}
        return options

    yield apply
    connection.close()
    connection.settings_dict["OPTIONS"] = saved


@pytest.fixture
def row_lock():
    """``row_lock(contact)``: another session holds the contact's row lock until the test ends."""
    settings = connection.settings_dict
    held = []

    def lock(contact: Contact) -> psycopg.Connection:
        other = psycopg.connect(
            host=settings["HOST"] or None,
            port=settings["PORT"] or None,
            user=settings["USER"],
            dbname=settings["NAME"],
        )
        other.execute("SELECT 1 FROM plunk_events_contact WHERE id = %s FOR UPDATE", [contact.id])
        held.append(other)
        return other

    yield lock
    for other in held:
        other.rollback()
        other.close()


def test_example_project_sets_the_timeouts(monkeypatch):
    options = example_options(monkeypatch)
    assert options["connect_timeout"] == 3
    assert options["options"] == (
        "-c statement_timeout=5000 -c lock_timeout=3000 "
        "-c idle_in_transaction_session_timeout=10000"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"DB_STATEMENT_TIMEOUT_MS": "300", "DB_LOCK_TIMEOUT_MS": "0"},
        {"DB_STATEMENT_TIMEOUT_MS": "0", "DB_LOCK_TIMEOUT_MS": "300"},
    ],
    ids=["statement_timeout", "lock_timeout"],
)
@pytest.mark.parametrize("idempotent", [False, True], ids=["one-statement", "general-path"])
def test_a_statement_over_the_timeout_is_a_503_that_wrote_nothing(
    pk, project, configure, row_lock, env, idempotent
):
    assert track(pk, {"email": "stuck@example.com", "event": "first"}).status_code == 200
    contact = Contact.objects.get(project=project)
    configure(**env)
    row_lock(contact)

    headers = {"HTTP_IDEMPOTENCY_KEY": "retry-1"} if idempotent else {}
    body = {"email": "stuck@example.com", "event": "second", "data": {"plan": "pro"}}
    started = time.monotonic()
    response = track(pk, body, **headers)
    elapsed = time.monotonic() - started

    assert_error(response, 503, "DATABASE_ERROR", "The database is unavailable; retry shortly")
    assert response["Retry-After"] == "1"
    assert elapsed < 3
    assert list(Event.objects.values_list("name", flat=True)) == ["first"]
    contact.refresh_from_db()
    assert contact.data is None


def test_the_retry_succeeds_once_the_database_is_free(pk, project, configure, row_lock):
    assert track(pk, {"email": "stuck@example.com", "event": "first"}).status_code == 200
    configure(DB_STATEMENT_TIMEOUT_MS="300")
    other = row_lock(Contact.objects.get(project=project))
    key = {"HTTP_IDEMPOTENCY_KEY": "retry-2"}
    body = {"email": "stuck@example.com", "event": "second"}
    assert track(pk, body, **key).status_code == 503
    other.rollback()  # the stuck transaction ends
    assert track(pk, body, **key).status_code == 200  # the 503 left the key free
    assert sorted(Event.objects.values_list("name", flat=True)) == ["first", "second"]
