"""Issue 13 items the other admin tests left unasserted: a STATIC segment's remove needs the
change permission too, the members list pages through 25 at a time, a tracked segment's exits
show beside its entries, the event page names the time zone, and the statistics page groups
thousands in its table and its legend alike."""

from __future__ import annotations

import re

from django.urls import reverse

from plunk_events.models import Contact, Event, Segment
from plunk_events.services import automation, segments
from plunk_events.services import contacts as contact_service


def static_segment(project, emails):
    segment = automation.create_segment(project, name="VIP", type=Segment.Type.STATIC)
    for email in emails:
        Contact.objects.create(project=project, email=email)
    segments.add_members(segment, list(emails))
    segment.refresh_from_db()
    return segment


def test_removing_static_members_needs_the_change_permission(staff_client, project):
    segment = static_segment(project, ["p@example.com"])
    url = reverse("admin:plunk_events_segment_members", args=[segment.pk])
    viewer = staff_client("view_segment")
    assert viewer.post(url, {"op": "remove", "emails": "p@example.com"}).status_code == 403
    segment.refresh_from_db()
    assert segment.member_count == 1
    editor = staff_client("view_segment", "change_segment")
    assert editor.post(url, {"op": "remove", "emails": "p@example.com"}).status_code == 302
    segment.refresh_from_db()
    assert segment.member_count == 0


def test_members_are_listed_25_to_a_page(admin_client, project):
    segment = static_segment(project, [f"m{i:02}@example.com" for i in range(30)])
    url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    first = admin_client.get(url)
    assert len(first.context["members"]) == 25
    assert (first.context["members_page"], first.context["members_pages"]) == (1, 2)
    assert 'href="?members_page=2" id="plunk-members-next"' in first.content.decode()
    second = admin_client.get(url, {"members_page": "2"})
    assert len(second.context["members"]) == 5
    listed = {m["email"] for m in first.context["members"] + second.context["members"]}
    assert len(listed) == 30  # no one twice, no one missed
    assert "plunk-members-next" not in second.content.decode()
    assert admin_client.get(url, {"members_page": "x"}).context["members_page"] == 1


def test_a_tracked_segment_shows_exits_beside_entries(admin_client, project):
    ada = Contact.objects.create(project=project, email="ada@example.com", data={"plan": "pro"})
    segment = automation.create_segment(
        project,
        name="Pro plan",
        track_membership=True,
        condition={
            "logic": "AND",
            "groups": [{"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}],
        },
    )
    segments.compute(segment)
    contact_service.update_contact(project, ada.pk, data={"plan": "free"})
    segments.compute(segment)
    page = admin_client.get(reverse("admin:plunk_events_segment_change", args=[segment.pk]))
    history = sorted((h["email"], h["what"]) for h in page.context["history"])
    assert history == [("ada@example.com", "entered"), ("ada@example.com", "left")]
    assert page.context["members"] == []
    assert "Latest entries and exits" in page.content.decode()


def test_the_event_page_names_the_time_zone(admin_client, project, settings):
    event = Event.objects.create(project=project, name="signup")
    url = reverse("admin:plunk_events_event_change", args=[event.pk])
    html = admin_client.get(url).content.decode()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", html)
    settings.TIME_ZONE = "Europe/Paris"
    html = admin_client.get(url).content.decode()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST)", html)


def test_stats_counts_group_thousands_in_the_table_and_the_legend(admin_client, project, seed):
    seed(project, {"pageview": 5000, "signup": 40}, days=20)
    response = admin_client.get(reverse("admin:plunk_events_event_stats"), {"project": project.pk})
    html = response.content.decode()
    legend = re.search(r'<ul class="plunk-legend">(.*?)</ul>', html, re.S).group(1)
    assert "(5,000)" in legend and "5000" not in legend
    names = re.search(r'<table class="plunk-table" id="plunk-names">.*?</table>', html, re.S).group(
        0
    )
    assert ">5,000<" in names and ">5000<" not in names


def test_the_bulk_cancel_action_needs_the_change_permission(admin_client, staff_client, project):
    from plunk_events.services import executions, workflows
    from plunk_events.workflow_models import WorkflowExecution

    workflow = workflows.create_workflow(
        project,
        name="Thank buyers",
        event_name="purchase",
        enabled=True,
        steps=[{"type": "DELAY", "name": "Pause", "config": {"amount": 1, "unit": "hours"}}],
    )
    people = [Contact.objects.create(project=project, email=f"r{i}@example.com") for i in range(2)]
    runs = [executions.start_execution(project, workflow.pk, p.pk).pk for p in people]
    listing = reverse("admin:plunk_events_workflowexecution_changelist")
    url = f"{listing}?project={project.pk}"
    form = {"action": "cancel_executions", "_selected_action": [str(pk) for pk in runs]}

    viewer = staff_client("view_workflowexecution")
    page = viewer.get(url)
    assert page.status_code == 200 and "cancel_executions" not in page.content.decode()
    viewer.post(url, form)
    statuses = set(WorkflowExecution.objects.filter(pk__in=runs).values_list("status", flat=True))
    assert "CANCELLED" not in statuses

    assert 'value="cancel_executions"' in admin_client.get(url).content.decode()
    response = admin_client.post(url, form, follow=True)
    assert "Cancelled 2 runs." in response.content.decode()
    statuses = set(WorkflowExecution.objects.filter(pk__in=runs).values_list("status", flat=True))
    assert statuses == {"CANCELLED"}
