"""Management commands: ``plunk_create_project``, the example site's ``plunk_demo``, and the
migrations gate."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count
from django.utils import timezone

from example_project.demo.management.commands import plunk_demo
from plunk_events.models import Contact, Event, Project, Segment, Template, Workflow, hash_key
from plunk_events.services import rollups
from plunk_events.services.conditions import validate_condition
from plunk_events.workflow_models import WorkflowExecution

PUBLIC_KEY = re.compile(r"^pk_[0-9a-f]{48}$")
SECRET_KEY = re.compile(r"^sk_[0-9a-f]{48}$")


def run(command, *args) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_create_project_prints_the_new_keys(client_for):
    output = run("plunk_create_project", "Acme shop")

    project = Project.objects.get()
    assert project.name == "Acme shop"
    assert PUBLIC_KEY.match(project.public_key)
    secret = re.search(r"^  secret key: (\S+)$", output, re.MULTILINE).group(1)
    assert SECRET_KEY.match(secret)
    assert output.splitlines() == [
        f"Project Acme shop ({project.id})",
        f"  public key: {project.public_key}",
        f"  secret key: {secret}",
        "Copy the secret key now: it is stored hashed and never shown again.",
    ]
    # Printed once, stored as its digest only; the printed key works.
    assert output.count(secret) == 1
    assert project.secret_key_hash == hash_key(secret) != secret
    assert project.secret_key_prefix == secret[:7]
    assert client_for(secret).get("/events/names").status_code == 200


@pytest.mark.django_db
def test_create_project_json_ends_with_one_json_line():
    first = json.loads(run("plunk_create_project", "One", "--json").splitlines()[-1])
    second = json.loads(run("plunk_create_project", "One", "--json").splitlines()[-1])

    assert set(first) == {"id", "name", "public_key", "secret_key"}
    project = Project.objects.get(pk=first["id"])
    assert first == {
        "id": str(project.id),
        "name": "One",
        "public_key": project.public_key,
        "secret_key": first["secret_key"],
    }
    assert project.secret_key_hash == hash_key(first["secret_key"])
    assert PUBLIC_KEY.match(first["public_key"]) and SECRET_KEY.match(first["secret_key"])
    # Same name, new project, new keys.
    assert second["id"] != first["id"]
    assert {second["public_key"], second["secret_key"]}.isdisjoint(
        {first["public_key"], first["secret_key"]}
    )


def printed(output: str, label: str) -> str:
    match = re.search(rf"^{label}:\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


@pytest.mark.django_db
def test_demo_loads_the_data_set_once_and_prints_login_and_keys(client_for):
    first = run(plunk_demo.Command())
    counts = (Project.objects.count(), Contact.objects.count(), Event.objects.count())
    first_secret = printed(first, "Secret key")
    assert client_for(first_secret).get("/events/names").status_code == 200
    second = run(plunk_demo.Command())

    project = Project.objects.get()
    assert project.name == "Demo"
    # The second run reuses everything: no new project, contact, event, segment or workflow.
    assert (Project.objects.count(), Contact.objects.count(), Event.objects.count()) == counts
    assert Segment.objects.filter(project=project).count() == 1
    assert Workflow.objects.filter(project=project).count() == 1
    # "Recent purchasers" is tracked and computed: its count is its stored members.
    segment = Segment.objects.get(project=project)
    assert segment.track_membership and segment.member_count > 0
    assert segment.member_count == segment.memberships.filter(exited_at=None).count()
    for output in (first, second):
        assert printed(output, "Public key") == project.public_key
        assert SECRET_KEY.match(printed(output, "Secret key"))
        assert "new on every run of plunk_demo" in output
        assert printed(output, "Admin") == "http://127.0.0.1:8000/admin/"
        assert "Login:       admin / admin" in output
        assert f'-H "Authorization: Bearer {project.public_key}"' in output
        assert "curl -X POST http://127.0.0.1:8000/v1/track" in output
    events, contacts = counts[2], counts[1]
    assert first.splitlines()[0] == (
        f'Created the demo project "Demo": loaded {events:,} events for {contacts:,} contacts.'
    )
    assert second.splitlines()[0] == (
        f'Reused the demo project "Demo": its {contacts:,} contacts and {events:,} events'
        " were already loaded."
    )
    # Each run rotates the secret key (only that one) and prints the new one, which works.
    second_secret = printed(second, "Secret key")
    assert second_secret != first_secret
    assert project.secret_key_hash == hash_key(second_secret)
    assert client_for(first_secret).get("/events/names").status_code == 401
    assert client_for(second_secret).get("/events/names").status_code == 200
    assert f'-H "Authorization: Bearer {second_secret}"' in second

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("admin")


@pytest.mark.django_db
def test_the_demos_send_command_sends_its_welcome_mail(
    client_for, mailoutbox, django_capture_on_commit_callbacks
):
    """The printed ``/v1/send`` example, body as printed, sends the demo template's mail."""
    output = run(plunk_demo.Command())
    secret = printed(output, "Secret key")
    (body,) = re.findall(r"/v1/send .* -d '(\{.*\})'", output)
    with django_capture_on_commit_callbacks(execute=True):  # the send task, after the commit
        response = client_for(secret).post("/v1/send", json.loads(body), format="json")
    assert response.status_code == 200, response.content
    (mail,) = mailoutbox
    assert mail.subject == "Welcome to Acme, Jane"
    assert mail.to == ["jane@example.com"] and mail.from_email == "Acme <hello@example.com>"
    assert Template.objects.filter(name="Welcome").count() == 1


@pytest.mark.django_db
def test_demo_prints_urls_for_its_port():
    output = run(plunk_demo.Command(), "--port", "8001")
    assert printed(output, "Admin") == "http://127.0.0.1:8001/admin/"
    assert printed(output, "API docs") == "http://127.0.0.1:8001/docs/"
    assert "curl -X POST http://127.0.0.1:8001/v1/track" in output
    assert "curl 'http://127.0.0.1:8001/events?limit=5'" in output
    assert ":8000" not in output
    with pytest.raises(CommandError, match="--port must be between 1 and 65535"):
        run(plunk_demo.Command(), "--port", "0")


@pytest.mark.django_db
def test_demo_data_set_has_the_promised_shape(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # as when the command commits
        run(plunk_demo.Command())
    project = Project.objects.get(name="Demo")
    events = Event.objects.filter(project=project)

    assert 200 <= Contact.objects.filter(project=project).count() <= 500
    assert 2000 <= events.count() <= 10000
    now = timezone.now()
    assert events.filter(created_at__lt=now - timedelta(days=90, hours=1)).count() == 0
    assert events.filter(created_at__gt=now).count() == 0
    assert events.filter(created_at__lt=now - timedelta(days=60)).exists()
    names = set(rollups.event_names(project))
    assert {"contact.subscribed", "contact.unsubscribed", "email.sent", "email.open"} <= names
    # Each system subscription event matches a contact whose flag is now consistent.
    assert Contact.objects.filter(project=project, subscribed=False).count() == (
        events.filter(name="contact.unsubscribed").count()
        - events.filter(name="contact.subscribed").count()
    )
    # The names, stats and the raw table agree (the import fed the rollup correctly).
    stats = {row["name"]: row["count"] for row in rollups.event_stats(project)}
    raw = dict(events.values_list("name").annotate(n=Count("id")).order_by())
    assert stats == raw

    segment = Segment.objects.get(project=project)
    assert validate_condition(segment.condition) == []
    workflow = Workflow.objects.get(project=project)
    seg_ref = [{"id": str(segment.id), "name": segment.name}]
    wf_ref = [{"id": str(workflow.id), "name": workflow.name}]
    # The segment filters on event.purchase; the workflow triggers on signed_up and waits for
    # project.created: all three names are guarded against deletion.
    for name, segments, workflows in (
        ("purchase", seg_ref, []),
        ("signed_up", [], wf_ref),
        ("project.created", [], wf_ref),
    ):
        usage = rollups.event_usage(project, name).as_dict()
        assert (usage["usedInSegments"], usage["usedInWorkflows"]) == (segments, workflows)
        assert usage["canDelete"] is False and usage["totalCount"] > 0

    # The last week's sign-ups have runs of the workflow: waiting for a first project, and
    # three (whose project.created was tracked, dispatched inline here) completed.
    runs = WorkflowExecution.objects.filter(workflow=workflow)
    recent = events.filter(name="signed_up", created_at__gte=now - timedelta(days=7)).count()
    assert runs.count() == recent >= 5
    assert runs.filter(status="COMPLETED").count() == 3
    assert runs.filter(status="WAITING").count() == recent - 3
    onboarded = Contact.objects.filter(project=project, data__onboarded=True)
    assert set(onboarded) == {run.contact for run in runs.filter(status="COMPLETED")}


def test_demo_rows_are_reproducible():
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert plunk_demo.demo_rows(now) == plunk_demo.demo_rows(now)
    assert plunk_demo.demo_rows(now) != plunk_demo.demo_rows(now, seed=1)


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_migrations_are_complete():
    # Exits with status 1 (SystemExit) if a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
