"""Issue 13: the admin a marketer can use (wording, links, edits through the services) and the
changelist's count from the rollup."""

from __future__ import annotations

import re

from django.contrib.admin.utils import quote
from django.urls import reverse

from plunk_events.constants import CONTACT_UNSUBSCRIBED
from plunk_events.models import Contact, Event, Project
from plunk_events.services import contacts as contact_service
from plunk_events.services.projects import create_project

CHANGELIST = reverse("admin:plunk_events_event_changelist")
STATS = reverse("admin:plunk_events_event_stats")


def name_url(project, name):
    return reverse("admin:plunk_events_event_name_stats", args=[project.pk, quote(name)])


def text_of(response) -> str:
    """The visible text of a page, roughly: tags, scripts and attributes removed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- the event changelist ---------------------------------------------------------------------


def test_changelist_rows_link_names_to_their_page_and_times_to_the_event(
    admin_client, project, seed
):
    seed(project, {"signup": 3})
    event = Event.objects.filter(project=project).order_by("-created_at", "-id").first()
    html = admin_client.get(CHANGELIST, {"project": project.pk}).content.decode()
    assert f'<td class="field-name"><a href="{name_url(project, "signup")}"' in html
    change = reverse("admin:plunk_events_event_change", args=[event.pk])
    assert f'<th class="field-created_at nowrap"><a href="{change}"' in html
    # One date-time style, with the time zone named; no Project column for one project.
    assert re.search(r"<time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", html)
    assert "column-project" not in html
    assert 'class="action-select"' in html


def test_changelist_count_comes_from_the_rollup_without_a_count_query(
    admin_client, project, seed, django_assert_max_num_queries, is_postgres
):
    seed(project, {"signup": 30, "login": 12, "email.open": 5})
    admin_client.get(CHANGELIST, {"project": project.pk})  # the first read folds the rollup
    # session, user, the projects, the names' all-time counts (one statement), the page of
    # rows, the drill-down's years (MIN/MAX): no COUNT.
    with django_assert_max_num_queries(6) as captured:
        response = admin_client.get(CHANGELIST, {"project": project.pk, "kind": "custom"})
    assert response.context["cl"].result_count == 42
    assert not any("COUNT(*)" in q["sql"] for q in captured.captured_queries)
    filtered = admin_client.get(CHANGELIST, {"project": project.pk, "event_name": "login"})
    assert filtered.context["cl"].result_count == 12
    assert "12 events" in text_of(filtered)


def test_a_changelist_of_one_name_links_to_its_page(admin_client, project, seed):
    seed(project, {"signup": 3})
    response = admin_client.get(CHANGELIST, {"project": project.pk, "event_name": "signup"})
    assert (
        f'<a href="{name_url(project, "signup")}">About “signup”</a>' in response.content.decode()
    )


def test_after_deleting_the_filtered_name_the_list_drops_the_filter(admin_client, project, seed):
    seed(project, {"old": 3, "signup": 2})
    query = f"?project={project.pk}&event_name=old"
    ids = [str(pk) for pk in Event.objects.filter(name="old").values_list("pk", flat=True)]
    response = admin_client.post(
        CHANGELIST + query,
        {
            "action": "delete_events_with_selected_names",
            "_selected_action": ids[:1],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}?project={project.pk}"
    assert not Event.objects.filter(name="old").exists()


def test_sidebar_name_counts_say_they_are_all_time(admin_client, project, seed):
    seed(project, {"signup": 3})
    response = admin_client.get(CHANGELIST, {"project": project.pk})
    assert "event name (all-time counts)" in text_of(response)


# --- statistics and name pages ----------------------------------------------------------------


def test_stats_page_speaks_plainly(admin_client, project, seed, referenced):
    seed(project, {"pageview": 5000, "signup": 40, "rare": 1, "email.open": 30}, days=20)
    response = admin_client.get(STATS, {"project": project.pk})
    text = text_of(response)
    assert "GET /events" not in text and "DELETE /events" not in text
    rows = {r.name: r for r in (i["row"] for i in response.context["rows"])}
    assert rows["rare"].count == 1
    html = response.content.decode()
    assert '<span class="plunk-share-value">&lt;0.1%</span>' in html  # never "0.0%"
    assert "icon-no.svg" not in html and "icon-yes.svg" not in html
    assert '<span class="plunk-tag" title="Recorded by Plunk itself">System</span>' in html
    assert "(s)" not in text


def test_unique_contacts_of_a_big_window_are_counted_on_request(admin_client, project, seed):
    from plunk_events.admin import views

    seed(project, {"signup": 30, "login": 20}, days=10, contacts=5)
    small = admin_client.get(STATS, {"project": project.pk})
    assert {i["row"].name: i["row"].unique_contacts for i in small.context["rows"]} == {
        "signup": 5,
        "login": 5,
    }
    old = views.CONTACTS_AUTO_EVENTS
    views.CONTACTS_AUTO_EVENTS = 10
    try:
        big = admin_client.get(STATS, {"project": project.pk})
        assert big.context["summaries"].contacts_skipped
        assert {i["row"].unique_contacts for i in big.context["rows"]} == {None}
        assert 'id="plunk-count-contacts"' in big.content.decode()
        asked = admin_client.get(STATS, {"project": project.pk, "contacts": "1"})
        assert {i["row"].unique_contacts for i in asked.context["rows"]} == {5}
    finally:
        views.CONTACTS_AUTO_EVENTS = old


def test_unknown_names_are_a_404(admin_client, project, seed):
    seed(project, {"signup": 3})
    assert admin_client.get(name_url(project, "never-tracked")).status_code == 404
    assert admin_client.get(name_url(project, "signup")).status_code == 200


def test_system_names_have_a_disabled_delete_button_with_the_reason(admin_client, project, seed):
    seed(project, {"email.open": 3, "signup": 2})
    html = re.sub(r"\s+", " ", admin_client.get(name_url(project, "email.open")).content.decode())
    delete = reverse("admin:plunk_events_event_name_delete", args=[project.pk, "email.open"])
    assert delete not in html
    assert '<span class="button plunk-disabled" aria-disabled="true">' in html
    assert "Cannot be deleted: Plunk records this event itself." in html
    deletable = admin_client.get(name_url(project, "signup")).content.decode()
    assert 'class="deletelink"' in deletable


# --- contacts ---------------------------------------------------------------------------------


def make_contact(project, email, data=None):
    state = contact_service.upsert_contact(project, email, data)
    return Contact.objects.get(pk=state.id)


def contact_url(contact):
    return reverse("admin:plunk_events_contact_change", args=[contact.pk])


def test_a_contact_is_edited_through_the_service(admin_client, project):
    contact = make_contact(project, "ada@example.com", {"plan": "free", "x": 1})
    response = admin_client.post(
        contact_url(contact),
        {"email": "Ada@Example.com ", "subscribed": "", "data": '{"plan": "pro"}'},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    contact.refresh_from_db()
    assert (contact.email, contact.subscribed, contact.data) == (
        "ada@example.com",
        False,
        {"plan": "pro"},
    )
    # The unsubscription is an event, as through the API.
    assert Event.objects.filter(contact=contact, name=CONTACT_UNSUBSCRIBED).count() == 1


def test_a_contact_edit_with_bad_input_changes_nothing(admin_client, project):
    contact = make_contact(project, "ada@example.com", {"plan": "free"})
    make_contact(project, "bob@example.com")
    for data in (
        {"email": "not an email", "subscribed": "on", "data": "{}"},
        {"email": "bob@example.com", "subscribed": "on", "data": "{}"},
        {"email": "ada@example.com", "subscribed": "on", "data": "[1, 2]"},
    ):
        response = admin_client.post(contact_url(contact), data)
        assert response.status_code == 200 and response.context["errors"]
    contact.refresh_from_db()
    assert (contact.email, contact.data) == ("ada@example.com", {"plan": "free"})


def test_contact_change_needs_the_change_permission(staff_client, project):
    contact = make_contact(project, "ada@example.com")
    viewer = staff_client("view_contact")
    page = viewer.get(contact_url(contact))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    viewer.post(contact_url(contact), {"email": "eve@example.com", "data": "{}"})
    contact.refresh_from_db()
    assert contact.email == "ada@example.com"
    editor = staff_client("view_contact", "change_contact")
    assert 'name="_save"' in editor.get(contact_url(contact)).content.decode()


def test_contacts_sort_by_event_count(admin_client, project, seed):
    people = seed(project, {"a": 6}, contacts=3)
    Event.objects.create(project=project, contact=people[0], name="b")
    listing = reverse("admin:plunk_events_contact_changelist")
    response = admin_client.get(listing, {"project": project.pk, "o": "-4"})
    emails = [c.email for c in response.context["cl"].result_list]
    assert emails[0] == people[0].email


# --- projects ---------------------------------------------------------------------------------


def test_project_page_shows_the_public_key_and_a_regenerate_button(admin_client, project):
    url = reverse("admin:plunk_events_project_change", args=[project.pk])
    html = admin_client.get(url).content.decode()
    regenerate = reverse("admin:plunk_events_project_regenerate_keys", args=[project.pk])
    assert project.public_key in html
    assert f'href="{regenerate}"' in html
    assert "rolled" not in html.lower()
    confirm = admin_client.get(regenerate)
    assert "Yes, regenerate the keys" in confirm.content.decode()
    old_hash = project.secret_key_hash
    shown = admin_client.post(regenerate, {"post": "yes"}).content.decode()
    project.refresh_from_db()
    assert project.secret_key_hash != old_hash
    new_key = re.search(r"sk_[A-Za-z0-9_\-]+", shown).group(0)
    assert Project.objects.get(pk=project.pk).secret_key_hash != new_key  # stored hashed
    assert new_key not in admin_client.get(url).content.decode()  # shown once


def test_regenerate_button_needs_the_change_permission(staff_client, project):
    regenerate = reverse("admin:plunk_events_project_regenerate_keys", args=[project.pk])
    viewer = staff_client("view_project")
    assert viewer.get(regenerate).status_code == 403
    old_hash = project.secret_key_hash
    assert viewer.post(regenerate, {"post": "yes"}).status_code == 403
    project.refresh_from_db()
    assert project.secret_key_hash == old_hash
    other = create_project("Beta")
    missing = reverse("admin:plunk_events_project_regenerate_keys", args=[other.pk])
    other.delete()
    assert staff_client("view_project", "change_project").get(missing).status_code == 404
