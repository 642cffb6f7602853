"""Issue 13: a segment's page lists its members (linked to their contacts) and, when tracked,
its entries and exits; a STATIC segment's members are added and removed by email through the
segment service."""

from __future__ import annotations

from django.urls import reverse

from plunk_events.models import Contact, Event, Segment
from plunk_events.services import automation


def make_static(project):
    return automation.create_segment(project, name="VIP", type=Segment.Type.STATIC)


def test_static_members_are_added_listed_and_removed_by_email(admin_client, project):
    segment = make_static(project)
    people = [Contact.objects.create(project=project, email=f"p{i}@example.com") for i in range(3)]
    members_url = reverse("admin:plunk_events_segment_members", args=[segment.pk])
    page_url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    response = admin_client.post(
        members_url, {"op": "add", "emails": "P0@example.com, p1@example.com\nnobody@example.com"}
    )
    assert response.status_code == 302 and response["Location"] == page_url
    segment.refresh_from_db()
    assert segment.member_count == 2
    page = admin_client.get(page_url)
    emails = [m["email"] for m in page.context["members"]]
    assert sorted(emails) == ["p0@example.com", "p1@example.com"]
    html = page.content.decode()
    contact_url = reverse("admin:plunk_events_contact_change", args=[people[0].pk])
    assert f'<a href="{contact_url}">p0@example.com</a>' in html
    assert 'id="plunk-add-members"' in html

    admin_client.post(members_url, {"op": "remove", "emails": "p0@example.com"})
    segment.refresh_from_db()
    assert segment.member_count == 1
    page = admin_client.get(page_url)
    assert [m["email"] for m in page.context["members"]] == ["p1@example.com"]


def test_dynamic_segments_have_no_membership_form(admin_client, project):
    segment = automation.create_segment(
        project,
        name="Signed up",
        condition={
            "logic": "AND",
            "groups": [{"filters": [{"field": "event.signup", "operator": "triggered"}]}],
        },
    )
    html = admin_client.get(
        reverse("admin:plunk_events_segment_change", args=[segment.pk])
    ).content.decode()
    assert 'id="plunk-add-members"' not in html
    response = admin_client.post(
        reverse("admin:plunk_events_segment_members", args=[segment.pk]),
        {"op": "add", "emails": "a@example.com"},
        follow=True,
    )
    assert "STATIC" in response.content.decode()  # the service's refusal, as a message


def test_membership_changes_need_the_change_permission(staff_client, project):
    segment = make_static(project)
    Contact.objects.create(project=project, email="p@example.com")
    viewer = staff_client("view_segment")
    page = viewer.get(reverse("admin:plunk_events_segment_change", args=[segment.pk]))
    assert page.status_code == 200 and 'id="plunk-add-members"' not in page.content.decode()
    url = reverse("admin:plunk_events_segment_members", args=[segment.pk])
    assert viewer.post(url, {"op": "add", "emails": "p@example.com"}).status_code == 403
    segment.refresh_from_db()
    assert segment.member_count == 0


def test_a_tracked_segment_shows_its_entries(admin_client, project):
    contact = Contact.objects.create(project=project, email="ada@example.com")
    Event.objects.create(project=project, contact=contact, name="signup")
    segment = automation.create_segment(
        project,
        name="Signed up",
        track_membership=True,
        condition={
            "logic": "AND",
            "groups": [{"filters": [{"field": "event.signup", "operator": "triggered"}]}],
        },
    )
    from plunk_events.services import segments

    segments.compute(segment)
    page = admin_client.get(reverse("admin:plunk_events_segment_change", args=[segment.pk]))
    assert [(h["email"], h["what"]) for h in page.context["history"]] == [
        ("ada@example.com", "entered")
    ]
    assert [m["email"] for m in page.context["members"]] == ["ada@example.com"]


def preview(client, condition, project=None, segment=None):
    import json

    return client.post(
        reverse("admin:plunk_events_segment_preview"),
        {
            "condition": json.dumps(condition),
            "project": str(project.pk) if project else "",
            "segment": str(segment.pk) if segment else "",
        },
    )


def test_preview_counts_with_the_segment_engine_and_reports_field_errors(admin_client, project):
    people = [Contact.objects.create(project=project, email=f"p{i}@example.com") for i in range(3)]
    for person in people[:2]:
        Event.objects.create(project=project, contact=person, name="signup")
    condition = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "event.signup", "operator": "triggered"}]}],
    }
    assert preview(admin_client, condition, project).json() == {"count": 2}
    bad = {"logic": "AND", "groups": [{"filters": [{"field": "event.signup", "operator": "nope"}]}]}
    errors = preview(admin_client, bad, project).json()["errors"]
    assert [e["field"] for e in errors] == ["condition.groups.0.filters.0.operator"]
    assert "message" in preview(admin_client, condition).json()  # no project chosen yet


def test_preview_needs_a_segment_permission(staff_client, project):
    condition = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "email", "operator": "exists"}]}],
    }
    assert preview(staff_client("view_contact"), condition, project).status_code == 403
    assert preview(staff_client("view_segment"), condition, project).status_code == 200
