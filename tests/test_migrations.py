"""Migration 0002_hashed_secret_keys: existing plaintext secret keys become digests and keep
working; reversed, every project gets a new plaintext secret key."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from plunk_events.services.projects import key_cache

BEFORE = [("plunk_events", "0002_event_statistics_proxy")]
AFTER = [("plunk_events", "0002_hashed_secret_keys")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # see the new state
    return executor


def project_model(executor, targets):
    return executor.loader.project_state(targets).apps.get_model("plunk_events", "Project")


@pytest.fixture
def migrator(transactional_db):
    """Runs migrations back and forth, then leaves the schema at the latest state again."""
    yield migrate
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_existing_secret_keys_are_hashed_and_keep_working(migrator, client_for):
    executor = migrator(BEFORE)
    OldProject = project_model(executor, BEFORE)
    keys = {
        "Alpha": ("pk_" + "a" * 48, "sk_3f9a" + "1" * 44),
        "Beta": ("pk_" + "b" * 48, "sk_77c0" + "2" * 44),
    }
    for name, (public, secret) in keys.items():
        OldProject.objects.create(name=name, public_key=public, secret_key=secret)

    executor = migrator(AFTER)
    NewProject = project_model(executor, AFTER)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM plunk_events_project")
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    assert "secret_key" not in columns
    for row in rows:
        public, secret = keys[row["name"]]
        assert row["public_key"] == public
        assert row["secret_key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
        assert row["secret_key_prefix"] == secret[:7]
        assert not any(secret in str(value) for value in row.values())
    assert NewProject.objects.count() == 2

    # Back at the latest schema, the keys issued before the migration still open the API.
    migrator(MigrationExecutor(connection).loader.graph.leaf_nodes())
    key_cache.clear()
    for public, secret in keys.values():
        assert client_for(secret).get("/events/names").status_code == 200
        track = client_for(public).post("/v1/track", {"email": "a@b.co", "event": "x"}, "json")
        assert track.status_code == 200


def test_reversing_gives_every_project_a_new_plaintext_secret_key(migrator):
    executor = migrator(AFTER)
    NewProject = project_model(executor, AFTER)
    for name in ("Alpha", "Beta"):
        NewProject.objects.create(
            name=name,
            public_key=f"pk_{name}",
            secret_key_hash=hashlib.sha256(name.encode()).hexdigest(),
            secret_key_prefix="sk_0000",
        )

    executor = migrator(BEFORE)
    OldProject = project_model(executor, BEFORE)
    secrets = list(OldProject.objects.values_list("secret_key", flat=True))
    assert len(secrets) == len(set(secrets)) == 2
    assert all(s.startswith("sk_") and len(s) == 51 for s in secrets)
