"""Contacts, segments, workflows and projects in the admin: every write through the services."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.urls import reverse

from plunk_events.models import (
    Contact,
    Event,
    EventDeletion,
    Project,
    Segment,
    Workflow,
    WorkflowExecution,
    WorkflowStep,
    hash_key,
)
from plunk_events.services import events, workflows


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# ---------------------------------------------------------------------------------------------
# Contacts


def contacts_url(project, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"project": project.pk, **params}.items())
    return reverse("admin:plunk_events_contact_changelist") + "?" + query


def test_contact_changelist_counts_events_without_a_query_per_row(
    admin_client, project, other_project, seed, django_assert_max_num_queries, is_postgres
):
    people = seed(project, {"signup": 90, "purchase": 13}, contacts=30)
    seed(other_project, {"signup": 5}, contacts=5, prefix="o")
    assert admin_client.get(reverse("admin:plunk_events_contact_changelist")).status_code == 302
    # PostgreSQL: the planner's estimate first (EXPLAIN), then, the estimate being small, the
    # exact count under its time budget (savepoint, statement_timeout, count, rollback).
    with django_assert_max_num_queries(11 if is_postgres else 9):
        response = admin_client.get(contacts_url(project))
    listed = list(response.context["cl"].result_list)
    assert len(listed) == 30
    assert {c.project_id for c in listed} == {project.pk}
    expected = {p.pk: Event.objects.filter(contact=p).count() for p in people}
    assert {c.pk: c.event_count for c in listed} == expected
    assert sum(expected.values()) == 103


def test_contact_search_and_subscribed_filter(admin_client, project, seed):
    people = seed(project, {"signup": 4}, contacts=4)
    Contact.objects.filter(pk=people[2].pk).update(subscribed=False)
    found = admin_client.get(contacts_url(project, q=" USER1@Example.com "))
    assert [c.pk for c in found.context["cl"].result_list] == [people[1].pk]
    assert list(admin_client.get(contacts_url(project, q="user")).context["cl"].result_list) == []
    unsubscribed = admin_client.get(contacts_url(project, subscribed__exact=0))
    assert [c.pk for c in unsubscribed.context["cl"].result_list] == [people[2].pk]


def test_contact_detail_shows_data_and_latest_events(admin_client, project, seed):
    people = seed(project, {"signup": 30, "purchase": 15}, contacts=1)
    contact = people[0]
    Contact.objects.filter(pk=contact.pk).update(data={"plan": "pro", "seats": 3})
    response = admin_client.get(reverse("admin:plunk_events_contact_change", args=[contact.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    pretty = json.dumps({"plan": "pro", "seats": 3}, indent=2, sort_keys=True)
    assert pretty.replace('"', "&quot;") in html
    timeline = response.context["timeline"]
    expected = events.list_events(project, contact_id=contact.pk, limit=20).events
    assert [e["id"] for e in timeline] == [e["id"] for e in expected]
    assert len(timeline) == 20 and response.context["timeline_more"]
    event_url = reverse("admin:plunk_events_event_change", args=[timeline[0]["id"]])
    assert f'<a href="{event_url}">' in html
    stats_url = reverse(
        "admin:plunk_events_event_name_stats", args=[project.pk, quote(timeline[0]["name"])]
    )
    assert f'<a href="{stats_url}">{timeline[0]["name"]}</a>' in html
    assert 'name="_save"' in html  # editable since issue 13, through the contact service


def test_contact_delete_goes_through_the_store(admin_client, project, seed, staff_client):
    people = seed(project, {"signup": 10}, contacts=2)
    url = reverse("admin:plunk_events_contact_delete", args=[people[0].pk])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert "Contact: user0@example.com (5 events of project Acme)" in confirm.content.decode()

    # Deleting the contact deletes its events: a user who may not delete events cannot.
    limited = staff_client("view_contact", "delete_contact")
    assert limited.post(url, {"post": "yes"}).status_code == 403
    assert Contact.objects.filter(pk=people[0].pk).exists()

    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Contact.objects.filter(pk=people[0].pk).exists()
    assert not Event.objects.filter(contact_id=people[0].pk).exists()
    assert Event.objects.filter(contact=people[1]).count() == 5


def test_contact_bulk_delete_goes_through_the_store(admin_client, project, seed):
    people = seed(project, {"signup": 9}, contacts=3)
    response = admin_client.post(
        contacts_url(project),
        {
            "action": "delete_selected",
            "_selected_action": [str(people[0].pk), str(people[1].pk)],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert list(Contact.objects.values_list("pk", flat=True)) == [people[2].pk]
    assert set(Event.objects.values_list("contact_id", flat=True)) == {people[2].pk}


def test_contacts_cannot_be_added(admin_client, project, seed):
    seed(project, {"signup": 1}, contacts=1)
    assert admin_client.get(reverse("admin:plunk_events_contact_add")).status_code == 403
    assert admin_client.post(reverse("admin:plunk_events_contact_add"), {}).status_code == 403


# ---------------------------------------------------------------------------------------------
# Segments

CONDITION = {
    "logic": "AND",
    "groups": [
        {
            "filters": [
                {"field": "event.signup", "operator": "triggeredWithin", "value": 7, "unit": "days"}
            ],
            "conditions": {
                "logic": "OR",
                "groups": [{"filters": [{"field": "event.purchase", "operator": "triggered"}]}],
            },
        }
    ],
}


def segment_form(project, **overrides) -> dict:
    data = {
        "project": str(project.pk),
        "name": "VIP Users!",
        "description": "",
        "type": "DYNAMIC",
        "condition": json.dumps(CONDITION),
        "track_membership": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_segment_add_validates_and_saves_through_the_service(admin_client, project):
    response = admin_client.post(reverse("admin:plunk_events_segment_add"), segment_form(project))
    assert response.status_code == 302, response.context["adminform"].form.errors
    segment = Segment.objects.get()
    assert segment.condition == CONDITION and segment.track_membership
    assert LogEntry.objects.get().object_id == str(segment.pk)

    change = admin_client.get(reverse("admin:plunk_events_segment_change", args=[segment.pk]))
    assert "vip-users" in change.content.decode()  # the slug, on the segment's page
    listing = admin_client.get(reverse("admin:plunk_events_segment_changelist"))
    html = listing.content.decode()
    for name in ("purchase", "signup"):
        url = reverse("admin:plunk_events_event_name_stats", args=[project.pk, quote(name)])
        assert f'<a href="{url}">{name}</a>' in html


def test_segment_condition_errors_are_field_level(admin_client, project):
    bad = {
        "logic": "XOR",
        "groups": [{"filters": [{"field": "event.signup", "operator": "equals"}]}],
    }
    response = admin_client.post(
        reverse("admin:plunk_events_segment_add"), segment_form(project, condition=json.dumps(bad))
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["condition"]
    assert errors["condition"] == [
        "condition.logic: Invalid enum value. Expected 'AND' | 'OR', received 'XOR'",
        'condition.groups.0.filters.0.operator: Operator "equals" cannot be used with field '
        '"event.signup"',
        "condition.groups.0.filters.0.value: Required",
    ]
    missing = admin_client.post(
        reverse("admin:plunk_events_segment_add"), segment_form(project, condition="null")
    )
    assert missing.context["adminform"].form.errors == {
        "condition": ["Condition is required for DYNAMIC segments"]
    }
    assert not Segment.objects.exists()


def test_static_segment_drops_its_condition(admin_client, project):
    admin_client.post(
        reverse("admin:plunk_events_segment_add"), segment_form(project, type="STATIC")
    )
    assert Segment.objects.get().condition is None


#: The lease of a live deletion worker (issue 7).
LATER = datetime(2999, 1, 1, tzinfo=UTC)


def test_segment_cannot_reference_a_name_being_deleted(admin_client, project, referenced):
    segment = referenced[0]
    EventDeletion.objects.create(  # a live worker is deleting it
        project=project, name="purchase", cutoff=project.created_at, lease_expires_at=LATER
    )
    url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    response = admin_client.post(url, segment_form(project, name="Signed up"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "condition": ['Event "purchase" is being deleted and cannot be referenced']
    }
    segment.refresh_from_db()
    assert segment.name == "Signed up" and "purchase" not in json.dumps(segment.condition)


def test_segment_change_and_delete(admin_client, project, referenced):
    segment = referenced[0]
    url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    page = admin_client.get(url)
    assert "signed-up" in page.content.decode()
    response = admin_client.post(url, segment_form(project, name="Renamed", track_membership=None))
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.name, segment.track_membership, segment.project_id) == (
        "Renamed",
        False,
        project.pk,
    )
    delete = reverse("admin:plunk_events_segment_delete", args=[segment.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Segment.objects.exists()


# ---------------------------------------------------------------------------------------------
# Workflows


def workflow_form(project, **overrides) -> dict:
    data = {
        "project": str(project.pk),
        "name": "Onboarding",
        "description": "",
        "event_name": "  signup  ",
        "enabled": "on",
    }
    for inline in ("steps", "transitions"):  # read-only inlines still post their management forms
        data.update(
            {
                f"{inline}-TOTAL_FORMS": "0",
                f"{inline}-INITIAL_FORMS": "0",
                f"{inline}-MIN_NUM_FORMS": "0",
                f"{inline}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update(overrides)
    return data


def test_workflow_add_goes_through_the_service(admin_client, project):
    response = admin_client.post(reverse("admin:plunk_events_workflow_add"), workflow_form(project))
    assert response.status_code == 302, response.context and response.context["errors"]
    workflow = Workflow.objects.get()
    assert workflow.trigger_config == {"eventName": "signup"} and workflow.enabled
    assert [(s.type, s.name, s.config, s.order) for s in workflow.steps.all()] == [
        ("TRIGGER", "Trigger: signup", {"eventName": "signup"}, 0),
    ]
    assert set(WorkflowStep.objects.values_list("project_id", flat=True)) == {project.pk}

    listing = admin_client.get(reverse("admin:plunk_events_workflow_changelist")).content.decode()
    url = reverse("admin:plunk_events_event_name_stats", args=[project.pk, "signup"])
    assert f'<a href="{url}">signup</a>' in listing
    change = admin_client.get(reverse("admin:plunk_events_workflow_change", args=[workflow.pk]))
    assert f'signup (<a href="{url}">statistics</a>)' in change.content.decode()


def test_workflow_graph_is_shown_read_only(admin_client, project):
    workflow = workflows.create_workflow(
        project,
        name="Buyers",
        event_name="purchase",
        steps=[
            {"type": "WAIT_FOR_EVENT", "name": "Wait for a review", "config": {"eventName": "review", "timeout": 60}},
            {"type": "EXIT", "name": "Done"},
        ],
    )  # fmt: skip
    url = reverse("admin:plunk_events_workflow_change", args=[workflow.pk])
    response = admin_client.get(url)
    assert response.context["inline_admin_formsets"] == []  # drawn, not edited (issue 13)
    html = re.sub(r"\s+", " ", response.content.decode())
    order = [html.index(n) for n in ("Trigger: purchase", "Wait for a review", "Done")]
    assert order == sorted(order)
    assert "<dt>Give up after</dt><dd>1 minute</dd>" in html
    assert "<em>when the event arrives</em> → " in html
    assert "<em>when the wait times out</em> → " in html
    assert 'name="steps-0-name"' not in html
    # A forged inline row changes nothing: the inlines are not editable.
    step = workflow.steps.get(type="EXIT")
    forged = workflow_form(
        project,
        name="Buyers",
        event_name="purchase",
        **{
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": str(step.pk),
            "steps-0-workflow": str(workflow.pk),
            "steps-0-name": "Renamed",
        },
    )
    assert admin_client.post(url, forged).status_code == 302
    assert WorkflowStep.objects.get(pk=step.pk).name == "Done"


def test_workflow_change_updates_the_trigger_and_keeps_the_graph(admin_client, project):
    workflow = workflows.create_workflow(
        project,
        name="Buyers",
        event_name="purchase",
        steps=[{"type": "WAIT_FOR_EVENT", "name": "Wait", "config": {"eventName": "review"}}],
    )
    edges = set(workflow.transitions.values_list("from_step", "to_step", "wait_outcome"))
    url = reverse("admin:plunk_events_workflow_change", args=[workflow.pk])
    response = admin_client.post(url, workflow_form(project, name="Buyers", event_name="order"))
    assert response.status_code == 302, response.context and response.context["errors"]
    workflow.refresh_from_db()
    assert workflow.trigger_config == {"eventName": "order"}
    assert [(s.type, s.name, s.config) for s in workflow.steps.all()] == [
        ("TRIGGER", "Trigger: order", {"eventName": "order"}),
        ("WAIT_FOR_EVENT", "Wait", {"eventName": "review"}),
    ]
    assert set(workflow.transitions.values_list("from_step", "to_step", "wait_outcome")) == edges
    assert LogEntry.objects.get(action_flag=CHANGE).object_id == str(workflow.pk)


def test_workflow_cannot_reference_a_name_being_deleted(admin_client, project):
    EventDeletion.objects.create(  # a live worker is deleting it
        project=project, name="signup", cutoff=project.created_at, lease_expires_at=LATER
    )
    response = admin_client.post(reverse("admin:plunk_events_workflow_add"), workflow_form(project))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "event_name": ['Event "signup" is being deleted and cannot be referenced']
    }
    blank = admin_client.post(
        reverse("admin:plunk_events_workflow_add"), workflow_form(project, event_name="   ")
    )
    assert blank.context["adminform"].form.errors["event_name"]
    assert not Workflow.objects.exists()


def test_a_workflow_with_active_executions_cannot_be_deleted(admin_client, project, referenced):
    workflow = referenced[1]
    contact = Contact.objects.create(project=project, email="run@example.com")
    run = WorkflowExecution.objects.create(
        project=project, workflow=workflow, contact=contact, status="WAITING"
    )
    url = reverse("admin:plunk_events_workflow_delete", args=[workflow.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:plunk_events_workflow_changelist")
    bulk = {"action": "delete_selected", "_selected_action": [str(workflow.pk)], "post": "yes"}
    assert admin_client.post(changelist, bulk).status_code == 403
    assert Workflow.objects.filter(pk=workflow.pk).exists()
    run.status = "COMPLETED"
    run.save()
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Workflow.objects.filter(pk=workflow.pk).exists()
    assert not WorkflowExecution.objects.filter(pk=run.pk).exists()


def test_workflow_delete_goes_through_the_service(admin_client, project, referenced):
    workflow = referenced[1]
    url = reverse("admin:plunk_events_workflow_delete", args=[workflow.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Workflow.objects.exists() and not WorkflowStep.objects.exists()


# ---------------------------------------------------------------------------------------------
# Projects


def shown_secret_keys(html: str) -> list[str]:
    return re.findall(r"sk_[0-9a-f]{48}", html)


def test_project_pages_show_the_public_key_and_only_the_secret_prefix(admin_client, project):
    for url in (
        reverse("admin:plunk_events_project_changelist"),
        reverse("admin:plunk_events_project_change", args=[project.pk]),
    ):
        html = admin_client.get(url).content.decode()
        assert project.public_key in html  # public keys ship to browsers anyway
        assert shown_secret_keys(html) == [] and project.secret_key_hash not in html
        assert f"{project.secret_key[:7]}…" in html
    assert (
        admin_client.get(
            reverse("admin:plunk_events_project_delete", args=[project.pk])
        ).status_code
        == 403
    )


def test_project_add_shows_the_keys_once(admin_client, client_for, db):
    response = admin_client.post(reverse("admin:plunk_events_project_add"), {"name": "Gamma"})
    assert response.status_code == 200
    project = Project.objects.get(name="Gamma")
    html = response.content.decode()
    (secret,) = shown_secret_keys(html)
    assert hash_key(secret) == project.secret_key_hash and project.public_key in html
    assert project.public_key.startswith("pk_")
    assert client_for(secret).get("/events/names").status_code == 200
    change = admin_client.get(reverse("admin:plunk_events_project_change", args=[project.pk]))
    assert secret not in change.content.decode()


def test_regenerate_keys_confirms_then_replaces_both_keys(admin_client, project, client_for):
    old_sk, old_pk = project.secret_key, project.public_key
    changelist = reverse("admin:plunk_events_project_changelist")
    data = {"action": "regenerate_project_keys", "_selected_action": [str(project.pk)]}
    confirm = admin_client.post(changelist, {**data, "index": "0"})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "The current keys stop working</strong>" in html
    assert '<input type="hidden" name="post" value="yes">' in html
    assert shown_secret_keys(html) == []
    project.refresh_from_db()
    assert project.secret_key_hash == hash_key(old_sk) and project.public_key == old_pk

    done = admin_client.post(changelist, {**data, "post": "yes"})
    assert done.status_code == 200
    project.refresh_from_db()
    (new_sk,) = shown_secret_keys(done.content.decode())  # shown once, on this page
    assert project.secret_key_hash == hash_key(new_sk) and new_sk != old_sk
    assert project.public_key != old_pk and project.public_key in done.content.decode()
    assert messages_of(done) == [
        "Regenerated the keys of 1 project. The old keys stop working at once here, and within"
        " API_KEY_CACHE_SECONDS in the site's other server processes."
    ]
    assert client_for(old_sk).get("/events/names").status_code == 401
    assert client_for(new_sk).get("/events/names").status_code == 200
    change = admin_client.get(reverse("admin:plunk_events_project_change", args=[project.pk]))
    assert shown_secret_keys(change.content.decode()) == []
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.action_flag, entry.change_message) == (
        str(project.pk),
        CHANGE,
        "Regenerated the API keys.",
    )


def test_regenerate_keys_needs_the_change_permission(staff_client, project):
    viewer = staff_client("view_project")
    response = viewer.get(reverse("admin:plunk_events_project_changelist"))
    assert response.status_code == 200
    assert response.context["action_form"] is None
    editor = staff_client("view_project", "change_project")
    response = editor.get(reverse("admin:plunk_events_project_changelist"))
    choices = [v for v, _ in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "regenerate_project_keys"]


@pytest.mark.parametrize("model", ["contact", "event", "segment", "workflow", "project"])
def test_changelists_render_for_a_superuser(admin_client, project, seed, referenced, model):
    seed(project, {"signup": 3})
    url = reverse(f"admin:plunk_events_{model}_changelist")
    response = admin_client.get(url, follow=True)
    assert response.status_code == 200
