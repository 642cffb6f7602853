"""The guarded delete by name: changelist action and name page button, both through a
confirmation page, the guard of DELETE /events/<name>, messages, LogEntry and permissions."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from plunk_events.admin.actions import execute_deletions, plan_deletions
from plunk_events.models import Event, EventDeletion
from plunk_events.services import automation, deletion

ACTION = "delete_events_with_selected_names"


@pytest.fixture
def seeded(project, other_project, seed, referenced):
    seed(project, {"pageview": 30, "signup": 12, "purchase": 6, "email.open": 5, "old": 3})
    seed(other_project, {"pageview": 4}, prefix="o")
    return project


def changelist(project, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"project": project.pk, **params}.items())
    return reverse("admin:plunk_events_event_changelist") + "?" + query


def one_of(project, name) -> str:
    return str(Event.objects.filter(project=project, name=name).first().pk)


def run_action(client, project, names, *, confirm=False, select_across=False, **params):
    data = {
        "action": ACTION,
        "_selected_action": [one_of(project, n) for n in names],
        "select_across": "1" if select_across else "0",
    }
    if confirm:
        data["post"] = "yes"
    else:
        data["index"] = "0"
    return client.post(changelist(project, **params), data)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def counts(project) -> dict[str, int]:
    names = Event.objects.filter(project=project).values_list("name", flat=True)
    out: dict[str, int] = {}
    for name in names:
        out[name] = out.get(name, 0) + 1
    return out


def test_confirmation_lists_counts_and_refusals_and_deletes_nothing(
    admin_client, seeded, referenced
):
    segment, workflow = referenced
    before = counts(seeded)
    response = run_action(admin_client, seeded, ["pageview", "signup", "purchase", "email.open"])
    assert response.status_code == 200
    assert response.templates[0].name == "admin/plunk_events/event/delete_by_name_confirmation.html"
    plans = {p.name: p for p in response.context["plans"]}
    assert {n: (p.count, p.deletable) for n, p in plans.items()} == {
        "pageview": (30, True),  # this project's events only
        "signup": (12, False),
        "purchase": (6, False),
        "email.open": (5, False),
    }
    assert plans["email.open"].refusal == "Plunk records this event itself; it cannot be deleted."
    assert plans["signup"].refusal == ("Used by 1 segment: edit it to stop using this event first.")
    html = response.content.decode()
    segment_url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    workflow_url = reverse("admin:plunk_events_workflow_change", args=[workflow.pk])
    assert f'segment <a href="{segment_url}">Signed up</a>' in html
    assert f'workflow <a href="{workflow_url}">Thank buyers</a>' in html
    assert "30 events will be deleted" in html
    assert '<input type="hidden" name="post" value="yes">' in html
    assert f'<input type="hidden" name="action" value="{ACTION}">' in html
    assert 'value="Yes, delete 30 events"' in html
    assert counts(seeded) == before


def test_confirmed_post_deletes_only_names_passing_the_guard(admin_client, seeded, other_project):
    response = run_action(
        admin_client, seeded, ["pageview", "old", "signup", "email.open"], confirm=True
    )
    assert response.status_code == 302
    assert response.url == changelist(seeded)
    assert counts(seeded) == {"signup": 12, "purchase": 6, "email.open": 5}
    assert counts(other_project) == {"pageview": 4}  # another project's events stay
    assert messages_of(response) == [
        "“email.open” was not deleted: Plunk records this event itself; it cannot be deleted.",
        "Deleted 3 “old” events in project “Acme”.",
        "Deleted 30 “pageview” events in project “Acme”.",
        "“signup” was not deleted: Used by 1 segment: edit it to stop using this event first.",
    ]
    entries = LogEntry.objects.order_by("object_id")
    assert [(e.object_id, e.action_flag) for e in entries] == [
        ("old", DELETION),
        ("pageview", DELETION),
    ]
    entry = entries[1]
    assert entry.content_type == ContentType.objects.get_for_model(Event)
    assert entry.user.username == "admin"
    assert entry.change_message == (
        'Deleted all 30 events named "pageview" in project "Acme" (guarded delete by event name).'
    )
    assert entry.object_repr == "pageview (30 events, Acme)"
    assert EventDeletion.objects.filter(status="DONE").count() == 2


def test_nothing_deletable_offers_no_confirm_button(admin_client, seeded):
    response = run_action(admin_client, seeded, ["signup", "email.open"])
    html = response.content.decode()
    assert "None of the selected event names can be deleted." in html
    assert 'name="post"' not in html
    response = run_action(admin_client, seeded, ["signup"], confirm=True)
    assert counts(seeded)["signup"] == 12
    assert not LogEntry.objects.exists()


def test_select_across_covers_every_name_of_the_filtered_list(admin_client, seeded):
    response = run_action(admin_client, seeded, ["pageview"], select_across=True, kind="custom")
    plans = {p.name: p.deletable for p in response.context["plans"]}
    assert plans == {"old": True, "pageview": True, "purchase": False, "signup": False}
    assert '<input type="hidden" name="select_across" value="1">' in response.content.decode()

    response = run_action(
        admin_client, seeded, ["pageview"], select_across=True, confirm=True, kind="custom"
    )
    assert counts(seeded) == {"signup": 12, "purchase": 6, "email.open": 5}

    # With the name filter, "select all" means that name only.
    response = run_action(admin_client, seeded, ["signup"], select_across=True, event_name="signup")
    assert [p.name for p in response.context["plans"]] == ["signup"]


def test_a_reference_added_after_the_confirmation_is_still_refused(rf, admin_user, seeded):
    """The guard runs again, under the project lock, when the deletion starts."""
    from django.contrib.admin import site
    from django.contrib.messages.storage.fallback import FallbackStorage

    plans = plan_deletions([(seeded, "pageview")])
    assert plans[0].deletable
    automation.create_segment(
        seeded,
        name="Readers",
        condition={
            "logic": "OR",
            "groups": [{"filters": [{"field": "event.pageview", "operator": "triggered"}]}],
        },
    )
    request = rf.post("/")
    request.user = admin_user
    request.session = {}
    request._messages = FallbackStorage(request)
    assert execute_deletions(site._registry[Event], request, plans) == 0
    assert [str(m) for m in request._messages] == [
        "“pageview” was not deleted: Used by 1 segment: edit it to stop using this event first."
    ]
    assert counts(seeded)["pageview"] == 30
    assert not LogEntry.objects.exists()


def test_the_action_needs_the_delete_permission(staff_client, seeded):
    viewer = staff_client("view_event")
    response = run_action(viewer, seeded, ["pageview"])
    # No actions at all for this user: the POST just shows the list again.
    assert response.status_code == 200
    assert response.templates[0].name == "admin/plunk_events/event/change_list.html"
    assert response.context["action_form"] is None
    response = run_action(viewer, seeded, ["pageview"], confirm=True)
    assert counts(seeded)["pageview"] == 30

    deleter = staff_client("view_event", "delete_event")
    page = deleter.get(changelist(seeded))
    assert [v for v, _ in page.context["action_form"].fields["action"].choices] == ["", ACTION]
    run_action(deleter, seeded, ["pageview"], confirm=True)
    assert "pageview" not in counts(seeded)


def detail_delete_url(project, name) -> str:
    return reverse("admin:plunk_events_event_name_delete", args=[project.pk, quote(name)])


def test_name_page_delete_button(admin_client, seeded, sk):
    url = detail_delete_url(seeded, "old")
    page = admin_client.get(url)
    assert page.status_code == 200
    assert [(p.name, p.count) for p in page.context["plans"]] == [("old", 3)]
    html = page.content.decode()
    assert f'<form method="post" action="{url}">' in html
    assert counts(seeded)["old"] == 3

    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert response.url == reverse("admin:plunk_events_event_stats") + f"?project={seeded.pk}"
    assert messages_of(response) == ["Deleted 3 “old” events in project “Acme”."]
    assert "old" not in counts(seeded)
    assert sk.get("/events/old/usage").json()["totalCount"] == 0
    assert LogEntry.objects.get().object_id == "old"


def test_name_page_delete_refusal(admin_client, seeded):
    url = detail_delete_url(seeded, "purchase")
    page = admin_client.get(url)
    assert "referenced by" in page.content.decode()
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert response.url == reverse(
        "admin:plunk_events_event_name_stats", args=[seeded.pk, quote("purchase")]
    )
    assert messages_of(response) == [
        "“purchase” was not deleted: Used by 1 workflow: edit it to stop using this event first."
    ]
    assert counts(seeded)["purchase"] == 6
    # A plain POST without post=yes only shows the confirmation again.
    assert admin_client.post(url).status_code == 200


def test_name_page_delete_needs_the_delete_permission(staff_client, seeded):
    viewer = staff_client("view_event")
    url = detail_delete_url(seeded, "old")
    assert viewer.get(url).status_code == 403
    assert viewer.post(url, {"post": "yes"}).status_code == 403
    assert counts(seeded)["old"] == 3


# ---------------------------------------------------------------------------------------------
# Unfinished delete jobs on the name page (issue 7)


class Killed(Exception):
    """The end of a worker in the middle of its job."""


def interrupted(project, name, *, live: bool) -> EventDeletion:
    """A job whose worker deleted one batch and died, its lease expired or (``live``) not yet."""
    with override_settings(PLUNK_EVENTS={"DELETE_BATCH_SIZE": 1}):
        job = deletion.start_deletion(project, name)

        def die(deleted):
            raise Killed

        with pytest.raises(Killed):
            deletion.run_deletion(job, on_batch=die)
    expires = timezone.now() + timedelta(minutes=5) if live else datetime(2000, 1, 1, tzinfo=UTC)
    EventDeletion.objects.filter(pk=job.pk).update(owner="dead", lease_expires_at=expires)
    job.refresh_from_db()
    return job


def name_page(client, project, name) -> str:
    url = reverse("admin:plunk_events_event_name_stats", args=[project.pk, quote(name)])
    response = client.get(url)
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def test_name_page_shows_a_running_deletion(admin_client, seeded):
    job = interrupted(seeded, "old", live=True)
    html = name_page(admin_client, seeded, "old")
    assert '<div class="module plunk-module plunk-deletion" id="plunk-deletion">' in html
    assert "<h2>Deletion in progress</h2>" in html
    assert '<th scope="row">Deleted so far</th><td class="num">1</td>' in html
    started = timezone.localtime(job.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert f'<th scope="row">Started at</th><td>{started}</td>' in html
    assert '<th scope="row">Worker alive</th><td>Yes (lease until' in html
    assert "No: it is being deleted" in html
    assert '<span class="button plunk-disabled" aria-disabled="true">' in html
    assert "Cannot be deleted: it is being deleted already." in html
    # The name page's delete is refused while the worker lives.
    response = admin_client.post(detail_delete_url(seeded, "old"), {"post": "yes"})
    assert messages_of(response) == [
        '“old” was not deleted: Event "old" is already being deleted by another worker'
    ]
    assert counts(seeded)["old"] == 2


def test_name_page_shows_an_abandoned_deletion_and_its_delete_finishes_it(admin_client, seeded):
    job = interrupted(seeded, "old", live=False)
    html = name_page(admin_client, seeded, "old")
    assert "<h2>Deletion abandoned</h2>" in html
    assert '<th scope="row">Worker alive</th><td>No</td>' in html
    assert "Finishes the abandoned deletion." in html
    response = admin_client.post(detail_delete_url(seeded, "old"), {"post": "yes"})
    assert messages_of(response) == ["Deleted 3 “old” events in project “Acme”."]
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 3)
    # Every "old" event is gone: its page is a 404, not an empty page with a delete button.
    url = reverse("admin:plunk_events_event_name_stats", args=[seeded.pk, quote("old")])
    assert admin_client.get(url).status_code == 404


def test_admin_segment_naming_an_abandoned_deletion_finishes_it(admin_client, seeded):
    job = interrupted(seeded, "old", live=False)
    condition = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "event.old", "operator": "triggered"}]}],
    }
    response = admin_client.post(
        reverse("admin:plunk_events_segment_add"),
        {
            "project": str(seeded.pk),
            "name": "Old",
            "description": "",
            "type": "DYNAMIC",
            "condition": json.dumps(condition),
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    job.refresh_from_db()
    assert (job.status, job.deleted_count) == (EventDeletion.Status.DONE, 3)
    assert "old" not in counts(seeded)
