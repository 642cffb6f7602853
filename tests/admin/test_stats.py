"""The statistics pages: the same numbers as the API, windows, sorting, charts, permissions,
and a pinned query count."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote as urlquote

import pytest
from django.contrib.admin.utils import quote
from django.db.models import Count, Max, Min
from django.urls import reverse
from django.utils import timezone

from plunk_events.models import Event
from plunk_events.services import automation

STATS = reverse("admin:plunk_events_event_stats")


def stats(client, project, **params):
    query = "&".join(f"{k}={v}" for k, v in {"project": project.pk, **params}.items())
    return client.get(f"{STATS}?{query}")


def name_url(project, name, **params) -> str:
    url = reverse("admin:plunk_events_event_name_stats", args=[project.pk, quote(name)])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def rows(response) -> list:
    return [item["row"] for item in response.context["rows"]]


def api_counts(sk, **params) -> dict[str, int]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = sk.get(f"/events/stats?{query}")
    assert response.status_code == 200, response.content
    return {item["name"]: item["count"] for item in response.json()}


NAMES = {"pageview": 300, "signup": 80, "purchase": 25, "email.open": 40, "contact.subscribed": 5}


@pytest.fixture
def seeded(project, seed, referenced):
    seed(project, NAMES, days=120, contacts=30)
    return project


@pytest.mark.parametrize("window", ["7", "30", "90", "all"])
def test_counts_are_those_of_the_stats_api(admin_client, seeded, sk, window):
    response = stats(admin_client, seeded, window=window)
    assert response.status_code == 200
    w = response.context["window"]
    expected = api_counts(sk, **w.api_params())
    assert {r.name: r.count for r in rows(response)} == expected
    assert response.context["summaries"].total == sum(expected.values())
    if window != "all":
        today = timezone.now().astimezone(UTC).date()
        assert w.api_params() == {"startDate": str(today - timedelta(days=int(window) - 1))}


def test_custom_window_matches_the_api_and_its_date_semantics(admin_client, seeded, sk):
    today = timezone.now().astimezone(UTC).date()
    start, end = today - timedelta(days=40), today - timedelta(days=20)
    response = stats(admin_client, seeded, window="custom", start=start, end=end)
    expected = api_counts(sk, startDate=start, endDate=end)
    assert {r.name: r.count for r in rows(response)} == expected
    begin = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    finish = datetime.combine(end, datetime.max.time(), tzinfo=UTC)
    in_window = Event.objects.filter(project=seeded, created_at__gte=begin, created_at__lte=finish)
    for row in rows(response):
        events = in_window.filter(name=row.name)
        agg = events.aggregate(
            first=Min("created_at"),
            last=Max("created_at"),
            contacts=Count("contact", distinct=True),
        )
        # First and last seen are UTC days, read from the daily rollup.
        assert (row.first_day, row.last_day) == (
            agg["first"].astimezone(UTC).date(),
            agg["last"].astimezone(UTC).date(),
        )
        assert row.unique_contacts == agg["contacts"]
        assert row.share == pytest.approx(row.count / sum(expected.values()))

    # Reversed dates are swapped; a malformed date falls back to 30 days with a warning.
    swapped = stats(admin_client, seeded, window="custom", start=end, end=start)
    assert {r.name: r.count for r in rows(swapped)} == expected
    bad = stats(admin_client, seeded, window="custom", start="2025-13-45")
    assert bad.context["window"].key == "30"
    assert "Dates must look like 2025-01-31" in bad.content.decode()


def test_rows_show_system_flag_and_linked_references(admin_client, seeded, referenced):
    segment, workflow = referenced
    response = stats(admin_client, seeded, window="all")
    by_name = {r.name: r for r in rows(response)}
    assert by_name["email.open"].is_system and by_name["contact.subscribed"].is_system
    assert not by_name["signup"].is_system
    assert [s.name for s in by_name["signup"].references.segments] == ["Signed up"]
    assert [w.name for w in by_name["purchase"].references.workflows] == ["Thank buyers"]
    html = response.content.decode()
    segment_url = reverse("admin:plunk_events_segment_change", args=[segment.pk])
    workflow_url = reverse("admin:plunk_events_workflow_change", args=[workflow.pk])
    assert f'<a href="{segment_url}" class="plunk-ref">Segment: Signed up</a>' in html
    assert f'<a href="{workflow_url}" class="plunk-ref">Workflow: Thank buyers</a>' in html
    assert f'href="{name_url(seeded, "signup", window="all")}"' in html


@pytest.mark.parametrize(
    ("order", "key"),
    [
        ("name", lambda r: r.name),
        ("-count", lambda r: -r.count),
        ("count", lambda r: r.count),
        ("-unique", lambda r: -r.unique_contacts),
        ("first", lambda r: r.first_day),
        ("-last", lambda r: -r.last_day.toordinal()),
        ("-share", lambda r: -r.share),
        ("system", lambda r: (r.is_system, r.name)),
        ("-refs", lambda r: -(len(r.references.segments) + len(r.references.workflows))),
    ],
)
def test_every_column_sorts(admin_client, seeded, order, key):
    got = rows(stats(admin_client, seeded, window="all", o=order))
    assert [key(r) for r in got] == sorted(key(r) for r in got)


def test_column_links_toggle_the_direction(admin_client, seeded):
    columns = {c["key"]: c for c in stats(admin_client, seeded).context["columns"]}
    assert columns["count"]["sorted"] and columns["count"]["descending"]
    assert "o=count" in columns["count"]["url"]
    assert "o=name" in columns["name"]["url"]
    assert "o=-unique" in columns["unique"]["url"]
    columns = {c["key"]: c for c in stats(admin_client, seeded, o="name").context["columns"]}
    assert "o=-name" in columns["name"]["url"]


def test_chart_is_labelled_accessible_svg_with_a_table(admin_client, seeded):
    response = stats(admin_client, seeded, window="30")
    chart = response.context["chart"]
    assert chart.unit == "day" and len(chart.buckets) == 30
    assert chart.total == response.context["summaries"].total
    assert [s.name for s in chart.series][:2] == ["pageview", "signup"]
    svg = str(chart.svg)
    assert svg.startswith('<svg class="plunk-chart"') and 'role="img"' in svg
    assert "<title>Daily events by name</title>" in svg
    assert "Events per day" in svg and "Day (UTC)" in svg
    assert re.search(r"<title>\d{4}-\d\d-\d\d · pageview: \d+ of \d+</title>", svg)
    html = response.content.decode()
    assert "<summary>Show the chart’s numbers as a table</summary>" in html
    assert html.count('<tr><th scope="row">') == 30  # one table row per day

    one = stats(admin_client, seeded, window="30", chart="signup").context["chart"]
    assert [s.name for s in one.series] == ["signup"]
    assert one.total == next(r.count for r in rows(response) if r.name == "signup")
    # An unknown chart name falls back to the stacked chart.
    assert stats(admin_client, seeded, chart="nope").context["chart_name"] is None


def test_long_windows_are_grouped_by_week(admin_client, project, seed):
    seed(project, {"signup": 50}, days=300)
    chart = stats(admin_client, project, window="all").context["chart"]
    assert chart.unit == "week"
    assert chart.total == 50


def test_name_detail_page(admin_client, seeded, sk, referenced):
    response = admin_client.get(name_url(seeded, "signup", window="all"))
    assert response.status_code == 200
    detail = response.context["detail"]
    usage = sk.get("/events/signup/usage").json()
    assert detail.usage.total_count == usage["totalCount"] == 80
    assert detail.usage.unique_contacts == usage["uniqueContacts"]
    assert detail.summary.count == 80
    assert detail.summary.unique_contacts == usage["uniqueContacts"]
    top = detail.top_contacts
    assert [c.count for c in top] == sorted((c.count for c in top), reverse=True)
    expected_top = (
        Event.objects.filter(project=seeded, name="signup")
        .values("contact__email")
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    assert top[0].count == expected_top["n"]
    html = response.content.decode()
    segment_url = reverse("admin:plunk_events_segment_change", args=[referenced[0].pk])
    assert f'Segment <a href="{segment_url}">Signed up</a>' in html
    assert "No: it is referenced" in html
    assert "svg" in html and "Daily events of “signup”" in html
    delete_url = reverse("admin:plunk_events_event_name_delete", args=[seeded.pk, quote("signup")])
    assert delete_url not in html  # referenced: no delete link, a disabled button and why
    assert "Cannot be deleted: segments or workflows above use it; edit them first." in html
    contact_url = reverse("admin:plunk_events_contact_change", args=[top[0].contact_id])
    assert f'<a href="{contact_url}">{top[0].email}</a>' in html


def test_name_detail_window_and_odd_names(admin_client, project, seed):
    odd = "a/b c?d%e_f.delete"
    seed(project, {odd: 12, "other": 3}, days=60)
    response = admin_client.get(name_url(project, odd, window="7"))
    assert response.status_code == 200
    assert response.context["name"] == odd
    in_window = Event.objects.filter(
        name=odd, created_at__gte=response.context["window"].start
    ).count()
    assert response.context["detail"].summary.count == in_window
    assert response.context["detail"].usage.total_count == 12
    assert response.context["detail"].usage.can_delete
    # The quoted name never splits the URL, even into the delete route.
    assert "/" not in quote(odd) and urlquote(odd, safe="") != quote(odd)


def test_unknown_project_and_empty_project(admin_client, project, other_project, seed):
    seed(project, {"signup": 3})
    missing = "00000000-0000-0000-0000-000000000000"
    assert admin_client.get(f"{STATS}?project={missing}").status_code == 404
    assert admin_client.get(f"{STATS}?project=junk").status_code == 404
    url = reverse("admin:plunk_events_event_name_stats", args=[missing, "signup"])
    assert admin_client.get(url).status_code == 404
    empty = stats(admin_client, other_project)
    assert empty.status_code == 200
    assert rows(empty) == []
    assert "No events in this window." in empty.content.decode()
    # Without ?project= the first project by name is shown.
    assert admin_client.get(STATS).context["project"] == project


def test_linked_from_the_changelist_and_the_admin_index(admin_client, project, seed):
    seed(project, {"signup": 1})
    changelist = admin_client.get(
        reverse("admin:plunk_events_event_changelist") + f"?project={project.pk}"
    )
    assert f'<a href="{STATS}?project={project.pk}">Statistics</a>' in changelist.content.decode()
    index = admin_client.get(reverse("admin:index")).content.decode()
    entry = reverse("admin:plunk_events_eventstatistics_changelist")
    assert f'<a href="{entry}">Event statistics</a>' in index
    assert admin_client.get(entry).url == STATS


def test_permissions(staff_client, seeded):
    nobody = staff_client("view_contact")
    assert stats(nobody, seeded).status_code == 403
    assert nobody.get(name_url(seeded, "signup")).status_code == 403
    assert "Event statistics" not in nobody.get(reverse("admin:index")).content.decode()

    viewer = staff_client("view_event")
    assert stats(viewer, seeded).status_code == 200
    page = viewer.get(name_url(seeded, "pageview"))
    assert page.status_code == 200
    assert "deletelink" not in page.content.decode()
    assert "Event statistics" in viewer.get(reverse("admin:index")).content.decode()


def test_unique_contacts_of_many_names_are_exact(admin_client, project, seed):
    people = seed(project, {"a": 10, "b": 7}, contacts=4)
    automation.create_segment(project, name="x", type="STATIC")
    got = {r.name: r.unique_contacts for r in rows(stats(admin_client, project, window="all"))}
    assert got == {
        "a": len({(i * 7) % len(people) for i in range(10)}),
        "b": len({(i * 7) % len(people) for i in range(7)}),
    }


def test_stats_page_query_count_is_pinned(
    admin_client,
    project,
    other_project,
    seed,
    referenced,
    django_assert_max_num_queries,
    is_postgres,
):
    seed(project, {f"name{i:02d}": 400 - i * 10 for i in range(15)}, days=90, contacts=200)
    seed(other_project, {"noise": 300}, prefix="o")
    assert Event.objects.filter(project=project).count() > 4000
    admin_client.get(STATS)  # the first read folds old days into the rollup
    # session, user, the projects (the selector, and the chosen one from it), one read of the
    # rollup for the counts, first/last days and the chart (insights.window_figures: watermark,
    # per-name days, raw tail by day and name, chart days, watermark check), unique contacts,
    # references (segments, wait steps, workflows). PostgreSQL adds 4 statements around the
    # time-budgeted query. Issue 13: 17 → 12 (the correlated first/last-seen subqueries and the
    # chart's second read of the rollup are gone).
    budget = 16 if is_postgres else 12
    with django_assert_max_num_queries(budget):
        response = stats(admin_client, project, window="30")
    assert len(rows(response)) == 15
    with django_assert_max_num_queries(budget):
        stats(admin_client, project, window="all", o="name", chart="name03")
    # One name: its usage (as the API: the all-time total from the rollup, distinct contacts,
    # references, running delete job), window counts, unique contacts, first/last seen, top
    # contacts and their emails, chart.
    with django_assert_max_num_queries(32 if is_postgres else 24):
        admin_client.get(name_url(project, "name03", window="90"))


NOT_COMPUTED_CELL = '<td class="num"><span class="plunk-muted" title="Not counted">—</span></td>'
NOT_COMPUTED_NOTES = (
    "Unique contacts were not computed: this window holds too many events",
    "not computed (too many events)",
    "Not computed: this window holds too many events of this name",
)


@pytest.mark.requires_postgres
def test_pages_say_not_computed_past_the_time_budget(
    admin_client, project, seed, insert_many, settings
):
    people = seed(project, {"signup": 10}, days=7)
    insert_many(project, "signup", 20_000, people)
    insert_many(project, "login", 5_000, people)

    # Within the (default) budget: every figure is shown.
    response = stats(admin_client, project, window="30")
    assert [(r.name, r.unique_contacts) for r in rows(response)] == [("signup", 40), ("login", 40)]
    detail = admin_client.get(name_url(project, "signup", window="30")).content.decode()
    for html in (response.content.decode(), detail):
        assert NOT_COMPUTED_CELL not in html
        assert not any(note in html for note in NOT_COMPUTED_NOTES)

    # A 1 ms budget: the distinct-contact and top-contact queries are cancelled by PostgreSQL.
    settings.PLUNK_EVENTS = {"ADMIN_STATS_BUDGET_MS": 1}
    response = stats(admin_client, project, window="30", o="-unique")
    assert response.status_code == 200
    assert [(r.name, r.count, r.unique_contacts) for r in rows(response)] == [
        ("signup", 20_010, None),
        ("login", 5_000, None),
    ]
    html = response.content.decode()
    assert NOT_COMPUTED_NOTES[0] in html
    assert html.count(NOT_COMPUTED_CELL) == 2
    response = admin_client.get(name_url(project, "signup", window="30"))
    assert response.status_code == 200
    assert response.context["detail"].summary.count == 20_010
    html = response.content.decode()
    assert NOT_COMPUTED_NOTES[1] in html and NOT_COMPUTED_NOTES[2] in html
    assert "<h2>Top contacts</h2>" in html and people[0].email not in html


def test_sqlite_has_no_time_budget(admin_client, project, seed, settings, is_postgres):
    if is_postgres:
        pytest.skip("SQLite behaviour")
    seed(project, {"signup": 50})
    settings.PLUNK_EVENTS = {"ADMIN_STATS_BUDGET_MS": 1}
    response = stats(admin_client, project, window="all")
    assert [(r.name, r.unique_contacts) for r in rows(response)] == [("signup", 40)]
    detail = admin_client.get(name_url(project, "signup", window="90"))
    assert detail.context["detail"].summary.unique_contacts == 40
    assert detail.context["detail"].top_contacts is not None
    for html in (response.content.decode(), detail.content.decode()):
        assert not any(note in html for note in NOT_COMPUTED_NOTES)
