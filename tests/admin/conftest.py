"""Fixtures of the admin tests: users with chosen permissions and bulk-seeded events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.utils import timezone

from plunk_events.models import Contact, Event, Project
from plunk_events.services import automation, workflows


def seed_events(
    project: Project,
    names: dict[str, int],
    *,
    days: int = 60,
    contacts: int = 40,
    now=None,
    prefix: str = "user",
) -> list[Contact]:
    """Bulk-create ``contacts`` contacts and ``names[name]`` events per name, spread evenly over
    the last ``days`` days (newest first), cycling through the contacts."""
    now = now or timezone.now()
    people = Contact.objects.bulk_create(
        [Contact(project=project, email=f"{prefix}{i}@example.com") for i in range(contacts)]
    )
    events = []
    span = timedelta(days=days).total_seconds()
    for name, n in names.items():
        for i in range(n):
            events.append(
                Event(
                    project=project,
                    contact=people[(i * 7) % len(people)],
                    name=name,
                    data={"i": i, "plan": "pro" if i % 3 else "free"},
                    created_at=now - timedelta(seconds=span * (i + 0.5) / n),
                )
            )
    Event.objects.bulk_create(events, batch_size=2000)
    return people


@pytest.fixture
def seed():
    return seed_events


@pytest.fixture
def staff_client(db):
    """``staff_client("view_event", "delete_event")``: a logged-in staff user with only those
    plunk_events permissions."""

    def make(*codenames: str) -> Client:
        user = User.objects.create_user(
            f"staff{User.objects.count()}", password="pw", is_staff=True
        )
        perms = Permission.objects.filter(
            content_type__app_label="plunk_events", codename__in=codenames
        )
        assert perms.count() == len(codenames), codenames
        user.user_permissions.set(perms)
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def referenced(project):
    """A segment on ``event.signup`` and a workflow triggered by ``purchase``."""
    segment = automation.create_segment(
        project,
        name="Signed up",
        condition={
            "logic": "AND",
            "groups": [{"filters": [{"field": "event.signup", "operator": "triggered"}]}],
        },
    )
    workflow = workflows.create_workflow(project, name="Thank buyers", event_name="purchase")
    return segment, workflow


def insert_many_events(project: Project, name: str, n: int, contacts: list[Contact]) -> None:
    """Insert ``n`` events of ``name`` in one ``INSERT … SELECT generate_series`` (PostgreSQL):
    tens of thousands of rows in a fraction of a second, the last hour, cycling through
    ``contacts``."""
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, project_id, contact_id, name, created_at) "  # noqa: S608
            "SELECT gen_random_uuid(), %s, (%s::uuid[])[1 + i %% %s], %s, "
            "now() - i * interval '50 milliseconds' FROM generate_series(1, %s) AS i",
            [project.pk, [c.pk for c in contacts], len(contacts), name, n],
        )


@pytest.fixture
def insert_many():
    return insert_many_events
