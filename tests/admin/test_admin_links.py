"""Links of the admin pages: query strings are URL-encoded, and every link of a page stays within
the admin site that serves it (a second ``AdminSite`` with another name included)."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse

from plunk_events.models import Contact, Event

LINK = re.compile(r'(?:href|action)="([^"]*)"')


def links(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return [html.unescape(url) for url in LINK.findall(response.content.decode())]


def link_to(response, text: str) -> str:
    (url,) = re.findall(rf'href="([^"]*)"[^>]*>{re.escape(text)}</a>', response.content.decode())
    return html.unescape(url)


def test_a_contact_with_a_plus_in_its_email_links_to_its_events(admin_client, project, seed):
    (plus,) = seed(project, {"signup": 15, "purchase": 10}, contacts=1, prefix="a+b")
    assert plus.email == "a+b0@example.com"
    Contact.objects.filter(pk=plus.pk).update(email="a+b@example.com")
    seed(project, {"signup": 5}, contacts=2, prefix="a b")  # "a b0@…": what a bare "+" means
    seed(project, {"signup": 5}, contacts=1, prefix="b")

    page = admin_client.get(reverse("admin:plunk_events_contact_change", args=[plus.pk]))
    url = link_to(page, "All events of this contact")
    assert parse_qs(urlsplit(url).query) == {"project": [str(project.pk)], "q": ["a+b@example.com"]}
    events = admin_client.get(url)
    assert events.status_code == 200
    listed = [e.pk for e in events.context["cl"].result_list]
    assert sorted(listed) == sorted(Event.objects.filter(contact=plus).values_list("pk", flat=True))
    assert len(listed) == 25


def test_project_and_event_list_links_carry_an_encoded_project(admin_client, project, seed):
    seed(project, {"signup": 3})
    projects = admin_client.get(reverse("admin:plunk_events_project_changelist"))
    query = f"project={project.pk}"
    for target in ("plunk_events_event_changelist", "plunk_events_contact_changelist"):
        assert f"{reverse(f'admin:{target}')}?{query}" in links(projects)
    stats = f"{reverse('admin:plunk_events_event_stats')}?{query}"
    assert stats in links(projects)
    events = admin_client.get(
        reverse("admin:plunk_events_event_changelist"), {"project": project.pk}
    )
    assert link_to(events, "Statistics") == stats


# ---------------------------------------------------------------------------------------------
# A second admin site


OTHER = "/other-admin/"


def assert_within_other_site(response) -> list[str]:
    urls = links(response)
    assert [u for u in urls if u.startswith("/admin/")] == []
    assert OTHER in urls  # the breadcrumbs' and the header's home
    return urls


@pytest.mark.urls("tests.admin.second_site_urls")
def test_pages_of_a_second_admin_site_link_within_it(admin_client, project, seed, referenced):
    segment, workflow = referenced
    people = seed(project, {"signup": 15, "purchase": 10, "pageview": 3}, contacts=1)
    contact = people[0]
    Contact.objects.filter(pk=contact.pk).update(email="a+b@example.com")

    def other(viewname, *args):
        return reverse(f"otheradmin:{viewname}", args=args)

    assert other("index") == OTHER
    query = f"?project={project.pk}"
    segment_url = other("plunk_events_segment_change", segment.pk)
    workflow_url = other("plunk_events_workflow_change", workflow.pk)

    # Statistics: breadcrumbs, names, references, the event list.
    stats = admin_client.get(other("plunk_events_event_stats") + query)
    urls = assert_within_other_site(stats)
    assert other("plunk_events_event_changelist") + query in urls
    assert {segment_url, workflow_url} <= set(urls)
    assert any(
        u.startswith(other("plunk_events_event_name_stats", project.pk, "signup")) for u in urls
    )

    # One name: its breadcrumbs, contacts, references and delete button.
    name = admin_client.get(other("plunk_events_event_name_stats", project.pk, "signup"))
    urls = assert_within_other_site(name)
    assert other("plunk_events_contact_change", contact.pk) in urls
    assert segment_url in urls
    delete_url = other("plunk_events_event_name_delete", project.pk, quote("signup"))
    assert delete_url not in urls  # referenced: the button is disabled, with the reason
    # Its delete confirmation names the references that refuse it.
    refused = admin_client.get(delete_url)
    urls = assert_within_other_site(refused)
    assert other("plunk_events_event_changelist") in urls and segment_url in urls
    # The event list and an event.
    events = admin_client.get(other("plunk_events_event_changelist") + query)
    urls = assert_within_other_site(events)
    assert other("plunk_events_event_stats") + query in urls
    assert other("plunk_events_contact_change", contact.pk) in urls
    event = Event.objects.filter(project=project, name="signup").first()
    assert_within_other_site(admin_client.get(other("plunk_events_event_change", event.pk)))
    # The contact's timeline and its "All events" link, followed.
    contact_page = admin_client.get(other("plunk_events_contact_change", contact.pk))
    urls = assert_within_other_site(contact_page)
    all_events = link_to(contact_page, "All events of this contact")
    assert all_events.startswith(other("plunk_events_event_changelist") + "?")
    assert len(admin_client.get(all_events).context["cl"].result_list) == 28
    # Segments and workflows link their event names to this site's statistics.
    assert_within_other_site(admin_client.get(segment_url))
    assert_within_other_site(admin_client.get(workflow_url))
    # Projects: the browse links, the key regeneration confirmation and the new keys page.
    projects_url = other("plunk_events_project_changelist")
    urls = assert_within_other_site(admin_client.get(projects_url))
    assert other("plunk_events_contact_changelist") + query in urls
    action = {"action": "regenerate_project_keys", "_selected_action": [str(project.pk)]}
    confirm = admin_client.post(projects_url, {**action, "index": "0"})
    assert projects_url in assert_within_other_site(confirm)
    done = admin_client.post(projects_url, {**action, "post": "yes"})
    assert projects_url in assert_within_other_site(done)
    # The admin index entry of the statistics redirects within the site.
    index_entry = admin_client.get(other("plunk_events_eventstatistics_changelist"))
    assert index_entry.status_code == 302
    assert index_entry["Location"] == other("plunk_events_event_stats")


@pytest.mark.parametrize(
    "name", ["signup", "a/b", "with space", "é?&=#%", "x_2F", "<b>", "dot.name", "emoji 🎉"]
)
def test_name_page_url_is_what_reverse_builds(project, name):
    from plunk_events.admin.base import name_page_url, name_stats_url

    assert name_page_url("admin", project.pk, name) == name_stats_url("admin", project.pk, name)
