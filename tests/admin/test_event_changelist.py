"""The Event changelist: one project at a time, index-friendly filters and search, read-only
events, no full COUNT on PostgreSQL, and a pinned query count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils import timezone

from plunk_events.admin.paginator import LargeTablePaginator
from plunk_events.models import Contact, Event

CHANGELIST = reverse("admin:plunk_events_event_changelist")


def url(project, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"project": project.pk, **params}.items())
    return f"{CHANGELIST}?{query}"


def listed(response) -> list:
    return list(response.context["cl"].result_list)


def test_redirects_to_the_first_project_by_name(admin_client, project, other_project):
    response = admin_client.get(CHANGELIST + "?kind=custom")
    assert response.status_code == 302
    assert response.url == f"{CHANGELIST}?kind=custom&project={project.pk}"  # "Acme" < "Other"


def test_lists_the_chosen_project_only(admin_client, project, other_project, seed):
    seed(project, {"signup": 3})
    seed(other_project, {"signup": 2, "other": 1}, prefix="o")
    response = admin_client.get(url(other_project))
    assert response.status_code == 200
    events = listed(response)
    assert len(events) == 3
    assert {e.project_id for e in events} == {other_project.pk}
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    html = response.content.decode()
    contact = Contact.objects.get(pk=events[0].contact_id)
    assert events[0].contact_email == contact.email
    contact_url = reverse("admin:plunk_events_contact_change", args=[contact.pk])
    assert f'<a href="{contact_url}">{contact.email}</a>' in html


def test_unknown_project_id_is_a_lookup_error(admin_client, project):
    response = admin_client.get(CHANGELIST + "?project=not-a-uuid")
    assert response.status_code == 302
    assert "e=1" in response.url


def test_system_and_custom_filter_is_case_sensitive(admin_client, project, seed):
    seed(
        project,
        {
            "email.open": 2,
            "Email.sent": 1,  # not reserved: the check is case-sensitive
            "contact.subscribed": 1,
            "segment.vip.entry": 1,
            "segment.vip.other": 1,
            "signup": 2,
        },
    )
    system = {e.name for e in listed(admin_client.get(url(project, kind="system")))}
    custom = {e.name for e in listed(admin_client.get(url(project, kind="custom")))}
    assert system == {"email.open", "contact.subscribed", "segment.vip.entry"}
    assert custom == {"Email.sent", "segment.vip.other", "signup"}


def test_name_filter_lists_the_most_frequent_names_of_the_project(
    admin_client, project, other_project, seed
):
    names = {f"name{i:02d}": 30 - i for i in range(28)}
    seed(project, names)
    seed(other_project, {"elsewhere": 50}, prefix="o")
    response = admin_client.get(url(project))
    spec = next(f for f in response.context["cl"].filter_specs if f.parameter_name == "event_name")
    choices = spec.lookup_choices
    assert len(choices) == 25
    assert choices[0] == ("name00", "name00 (30)")
    assert choices[-1] == ("name24", "name24 (6)")
    assert "elsewhere" not in dict(choices)

    # A chosen name outside the top 25 stays listed, and filters the events.
    response = admin_client.get(url(project, event_name="name27"))
    spec = next(f for f in response.context["cl"].filter_specs if f.parameter_name == "event_name")
    assert ("name27", "name27 (3)") in spec.lookup_choices
    assert {e.name for e in listed(response)} == {"name27"}
    assert len(listed(response)) == 3


def test_search_by_name_prefix_or_exact_email(admin_client, project, other_project, seed):
    people = seed(project, {"signup": 10, "purchase": 4}, contacts=5)
    seed(other_project, {"signup": 3}, contacts=5)  # same emails in another project
    by_name = listed(admin_client.get(url(project, q="purchase")))
    assert len(by_name) == 4 and {e.name for e in by_name} == {"purchase"}
    assert {e.name for e in listed(admin_client.get(url(project, q="purch")))} == {"purchase"}
    assert len(listed(admin_client.get(url(project, q="s")))) == 10  # prefix: signup only
    assert listed(admin_client.get(url(project, q="urch"))) == []  # a prefix, not a substring

    by_email = listed(admin_client.get(url(project, q="USER1@example.com")))
    assert by_email and {e.contact_id for e in by_email} == {people[1].pk}
    assert len(by_email) == Event.objects.filter(contact=people[1]).count()


def test_date_drilldown_costs_no_distinct_and_filters(admin_client, project, seed):
    now = timezone.now()
    seed(project, {"signup": 40}, days=400, now=now)
    response = admin_client.get(url(project))
    drill = response.context["cl"].date_drilldown()
    first_year = Event.objects.order_by("created_at").first().created_at.year
    assert [c["title"] for c in drill["choices"]] == [
        str(y) for y in range(first_year, now.year + 1)
    ]
    html = response.content.decode()
    assert f"created_at__year={now.year}" in html

    year_page = admin_client.get(url(project, created_at__year=now.year))
    months = year_page.context["cl"].date_drilldown()["choices"]
    with_events = {
        e.created_at.month
        for e in Event.objects.filter(project=project)
        if e.created_at.year == now.year
    }
    assert len(months) == len(with_events)  # only months that have events are offered
    month = max(with_events)
    month_page = admin_client.get(url(project, created_at__year=now.year, created_at__month=month))
    days = [c["title"] for c in month_page.context["cl"].date_drilldown()["choices"]]
    assert len(days) == len(
        {
            e.created_at.day
            for e in Event.objects.filter(project=project)
            if (e.created_at.year, e.created_at.month) == (now.year, month)
        }
    )
    assert all(e.created_at.year == now.year for e in listed(year_page))

    day = now - timedelta(days=3)
    day_page = admin_client.get(
        url(
            project,
            created_at__year=day.year,
            created_at__month=day.month,
            created_at__day=day.day,
        )
    )
    assert all(e.created_at.date() == day.date() for e in listed(day_page))
    expected = Event.objects.filter(
        created_at__gte=datetime(day.year, day.month, day.day, tzinfo=UTC),
        created_at__lt=datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1),
    ).count()
    assert len(listed(day_page)) == expected


def test_sorting_by_created_at_keeps_an_id_tiebreak_in_the_same_direction(admin_client, project):
    from plunk_events.admin.filters import EventChangeList

    assert EventChangeList._get_deterministic_ordering.__qualname__.startswith("EventChangeList")
    response = admin_client.get(url(project, o="3"))  # created_at ascending (no Project column)
    ordering = response.context["cl"].get_ordering(response.wsgi_request, Event.objects.all())
    assert ordering == ["created_at", "id"]
    assert issubclass(EventChangeList, ChangeList)


def test_events_are_read_only_facts(admin_client, project, seed):
    seed(project, {"signup": 1})
    event = Event.objects.get()
    change_url = reverse("admin:plunk_events_event_change", args=[event.pk])
    response = admin_client.get(change_url)
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        '<pre class="plunk-json">{\n  &quot;i&quot;: 0,\n  &quot;plan&quot;: &quot;free&quot;\n}</pre>'
        in html
    )
    assert 'name="_save"' not in html
    assert admin_client.post(change_url, {"name": "changed"}).status_code == 403
    assert admin_client.get(reverse("admin:plunk_events_event_add")).status_code == 403
    delete_url = reverse("admin:plunk_events_event_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Event.objects.get().name == "signup"

    actions = admin_client.get(url(project)).context["action_form"].fields["action"].choices
    assert [value for value, _ in actions] == ["", "delete_events_with_selected_names"]


def test_view_permission_alone_browses_without_actions(staff_client, project, seed):
    seed(project, {"signup": 2})
    viewer = staff_client("view_event")
    response = viewer.get(url(project))
    assert response.status_code == 200
    assert response.context["action_form"] is None
    assert 'class="action-select"' not in response.content.decode()
    assert staff_client("view_contact").get(url(project)).status_code == 403


def test_changelist_query_count_is_pinned(
    admin_client, project, other_project, seed, django_assert_max_num_queries, is_postgres
):
    seed(project, {f"name{i}": 900 - i * 50 for i in range(8)}, days=90, contacts=300)
    seed(other_project, {"noise": 500}, prefix="o")
    assert Event.objects.count() > 4000
    admin_client.get(url(project))  # the first read folds old days into the rollup
    # session, user, the projects (the filter's choices, the chosen one among them), the name
    # filter's all-time counts (insights.all_time_counts: name totals and live tail in one
    # statement), the page itself, the date drill-down's years (one MIN/MAX of the events'
    # (project, created_at) index). Issue 13: no COUNT (the rollup's totals answer it); 11 → 6.
    budget = 6
    with django_assert_max_num_queries(budget):
        response = admin_client.get(url(project, kind="custom"))
    assert len(listed(response)) == 100
    with django_assert_max_num_queries(budget):
        response = admin_client.get(url(project, event_name="name3", p=2))
    assert len(listed(response)) == 100
    # + the contact lookup of the search; the count is not the rollup's: on PostgreSQL the
    # planner's estimate (EXPLAIN), then the exact count under its budget (savepoint,
    # statement_timeout, COUNT, rollback, release).
    with django_assert_max_num_queries(budget + 1 + (6 if is_postgres else 1)):
        admin_client.get(url(project, q="user3@example.com"))


def test_paginator_counts_exactly_on_sqlite_and_caps_pages(project, seed, is_postgres):
    seed(project, {"signup": 250})
    paginator = LargeTablePaginator(Event.objects.order_by("-created_at"), 10)
    assert paginator.count == 250 and not paginator.estimated
    paginator.max_pages = 5
    assert paginator.num_pages == 5 and paginator.capped


@pytest.mark.requires_postgres
def test_paginator_estimates_when_the_count_runs_out_of_time(project, seed):
    from django.db import connection

    seed(project, {"signup": 300})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE plunk_events_event")
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    slow = Event.objects.extra(where=["pg_sleep(0.01) IS NOT NULL"]).order_by("-created_at")  # noqa: S610
    paginator = LargeTablePaginator(slow, 10)
    paginator.count_timeout_ms = 50
    assert paginator.count > 0
    assert paginator.estimated
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before  # the SET LOCAL did not leak
    fast = LargeTablePaginator(Event.objects.order_by("-created_at"), 10)
    assert fast.count == 300 and not fast.estimated


def test_the_action_bar_is_djangos_action_form(admin_client, project, seed):
    """The action fields are written out (no widget templates) exactly as Django renders them."""
    from django.contrib.admin.helpers import ActionForm

    seed(project, {"signup": 2})
    response = admin_client.get(url(project))
    form = ActionForm(auto_id=None)
    form.fields["action"].choices = response.context["cl"].model_admin.get_action_choices(
        response.wsgi_request
    )
    django_html = "".join(
        f"<label>{f.label} {f}</label>" if f.label else str(f) for f in form
    ).replace("\n", "")
    assert response.context["cl"].action_fields_html() == django_html.replace("  <", "<")
    assert django_html.replace("  <", "<") in response.content.decode()
