"""services.insights: the admin's numbers agree with the API's functions and the references
rule, and the time budget on PostgreSQL degrades to "not computed" without leaking settings."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import connection
from django.db.models import Count, Max, Min
from django.utils import timezone

from plunk_events.models import Event, EventNameTotal, Workflow
from plunk_events.services import automation, insights, rollups, workflows
from plunk_events.services.references import find_references, references_by_name


def test_references_by_name_follows_the_guard_rule_for_many_names(project, other_project):
    nested = {
        "logic": "OR",
        "groups": [
            {"filters": [{"field": "event.a", "operator": "triggered"}]},
            {
                "filters": [{"field": "email.opened", "operator": "triggered"}],
                "conditions": {
                    "logic": "AND",
                    "groups": [
                        {
                            "filters": [
                                {"field": "event.b", "operator": "notTriggered"},
                                {"field": "event.a", "operator": "triggered"},
                            ]
                        }
                    ],
                },
            },
        ],
    }
    automation.create_segment(project, name="Zed", condition=nested)
    automation.create_segment(project, name="Alpha", condition=nested)
    automation.create_segment(project, name="Static", type="STATIC")
    automation.create_segment(other_project, name="Elsewhere", condition=nested)
    workflows.create_workflow(project, name="First", event_name="b")
    workflows.create_workflow(
        project,
        name="Waits",
        event_name="c",
        steps=[
            {"type": "WAIT_FOR_EVENT", "name": "w1", "config": {"eventName": "a"}},
            {"type": "WAIT_FOR_EVENT", "name": "w2", "config": {"eventName": "a"}},
        ],
    )
    disabled = workflows.create_workflow(project, name="Off", event_name="a", enabled=False)
    Workflow.objects.filter(pk=disabled.pk).update(enabled=False)
    names = ["a", "b", "c", "d", "email.opened"]
    batch = references_by_name(project, names)

    def named(refs):
        return [s.name for s in refs.segments], [w.name for w in refs.workflows]

    # Segments by name, workflows by creation; nested conditions, wait steps (once per
    # workflow) and disabled workflows count; email.<activity> fields and other projects do not.
    assert {name: named(batch[name]) for name in names} == {
        "a": (["Alpha", "Zed"], ["Waits", "Off"]),
        "b": (["Alpha", "Zed"], ["First"]),
        "c": ([], ["Waits"]),
        "d": ([], []),
        "email.opened": ([], []),
    }
    assert named(find_references(project, "a")) == named(batch["a"])


def test_name_summaries_agree_with_the_api_functions(project, seed):
    now = timezone.now()
    seed(project, {"old": 40, "both": 60}, days=100, now=now - timedelta(days=2))
    seed(project, {"fresh": 5, "both": 3}, days=1 / 48, now=now, prefix="new")
    start = now - timedelta(days=30)
    summaries = insights.name_summaries(project, start, None)
    assert [(r.name, r.count) for r in summaries.rows] == [
        (s["name"], s["count"]) for s in rollups.event_stats(project, start, None)
    ]
    assert summaries.total == sum(r.count for r in summaries.rows)
    assert summaries.contacts_computed
    for row in summaries.rows:
        agg = Event.objects.filter(project=project, name=row.name, created_at__gte=start).aggregate(
            first=Min("created_at"), last=Max("created_at"), n=Count("contact", distinct=True)
        )
        assert (row.first_day, row.last_day, row.unique_contacts) == (
            agg["first"].astimezone(UTC).date(),
            agg["last"].astimezone(UTC).date(),
            agg["n"],
        ), row.name
    # The counts above came through the rollup: "old" and "both" are in it; the newest events
    # (the last minute, ROLLUP_LAG_SECONDS) are still counted raw.
    rolled = type(project).objects.get(pk=project.pk).events_rolled_until
    assert rolled is not None
    catalogued = set(EventNameTotal.objects.filter(project=project).values_list("name", flat=True))
    assert {"old", "both"} <= catalogued <= {"old", "both", "fresh"}


@pytest.mark.parametrize("window", ["all", "7 days", "partial days"])
def test_window_figures_read_once_what_the_api_functions_read(project, seed, window):
    """The names table and its chart come from one read: its counts are the API's
    (``event_counts``), its chart series ``daily_counts``' and its first/last days the events'."""
    now = timezone.now()
    seed(project, {f"n{i}": 45 - 4 * i for i in range(9)}, days=40, now=now - timedelta(hours=3))
    seed(project, {"n8": 2, "fresh": 3}, days=1 / 48, now=now, prefix="new")  # the raw tail
    rollups.rollup(project)
    today = now.astimezone(UTC).date()
    start, end = {
        "all": (None, None),
        "7 days": (datetime.combine(today - timedelta(days=6), time.min, tzinfo=UTC), None),
        # Windows that start and end inside a day: raw events on both sides of the rollup's days.
        "partial days": (now - timedelta(days=20, hours=5), now - timedelta(days=3, hours=7)),
    }[window]
    figures = insights.window_figures(project, start, end, top=3, others="~others")
    assert figures.counts == rollups.event_counts(project, start, end)
    top = [name for name, _ in rollups.ranked(figures.counts)[:3]]
    assert figures.charted == top
    assert figures.daily == rollups.daily_counts(project, start, end, names=top, others="~others")
    for name in figures.counts:
        events = insights._window(Event.objects.filter(project=project, name=name), start, end)
        agg = events.aggregate(first=Min("created_at"), last=Max("created_at"))
        assert figures.days[name] == (
            agg["first"].astimezone(UTC).date(),
            agg["last"].astimezone(UTC).date(),
        ), name
    one = insights.window_figures(project, start, end, chart=["n5"], others="~others")
    assert one.charted == ["n5"]
    assert one.daily == rollups.daily_counts(project, start, end, names=["n5"])
    unknown = insights.window_figures(project, start, end, chart=["nope"], top=2)
    assert unknown.charted == top[:2]


def test_all_time_counts_are_event_counts_in_one_statement(
    project, other_project, seed, django_assert_num_queries
):
    from plunk_events.models import Project

    now = timezone.now()
    seed(other_project, {"n1": 5}, prefix="o")
    # Never rolled up: everything is the raw tail (the call rolls the project up first).
    seed(project, {"n1": 30, "n2": 12}, days=30, now=now - timedelta(hours=1))
    fresh = Project.objects.get(pk=project.pk)
    assert fresh.events_rolled_until is None
    assert insights.all_time_counts(fresh) == rollups.event_counts(project)
    # Rolled up, with a raw tail after the watermark: one statement.
    seed(project, {"n2": 4, "new": 3}, days=1 / 1440, now=now, prefix="t")
    fresh = Project.objects.get(pk=project.pk)
    assert fresh.events_rolled_until is not None
    with django_assert_num_queries(1):
        counts = insights.all_time_counts(fresh)
    assert counts == rollups.event_counts(project) == {"n1": 30, "n2": 16, "new": 3}


def test_all_time_counts_count_nothing_twice_after_a_later_rollup(project, seed):
    """The project was loaded before a rollup moved the watermark over some tail events: they
    are in the totals now, and the statement's own watermark keeps them out of its tail."""
    from plunk_events.models import Project

    now = timezone.now()
    seed(project, {"old": 10}, days=10, now=now - timedelta(hours=1))
    rollups.rollup(project, now=now - timedelta(seconds=30))  # watermark: now - 90 s
    loaded = Project.objects.get(pk=project.pk)
    seed(project, {"mid": 4}, days=10 / 86400, now=now - timedelta(seconds=70), prefix="m")
    rollups.rollup(project, now=now)  # watermark: now - 60 s, "mid" folded into the totals
    assert EventNameTotal.objects.get(project=project, name="mid").count == 4
    assert loaded.events_rolled_until < Project.objects.get(pk=project.pk).events_rolled_until
    assert insights.all_time_counts(loaded) == rollups.event_counts(project)
    assert insights.all_time_counts(loaded) == {"old": 10, "mid": 4}


def test_name_detail_uses_event_usage_for_all_time(project, seed, referenced):
    seed(project, {"signup": 20, "other": 4}, contacts=6)
    detail = insights.name_detail(project, "signup")
    usage = rollups.event_usage(project, "signup")
    assert (detail.usage.total_count, detail.usage.unique_contacts) == (20, usage.unique_contacts)
    assert detail.summary.unique_contacts == usage.unique_contacts
    assert detail.summary.share == pytest.approx(20 / 24)
    assert [s.name for s in detail.summary.references.segments] == ["Signed up"]
    assert sum(c.count for c in detail.top_contacts) == 20
    assert detail.top_contacts == sorted(
        detail.top_contacts, key=lambda c: (-c.count, str(c.contact_id))
    )


def test_top_contacts_include_events_without_contact(project, seed):
    seed(project, {"signup": 3}, contacts=1)
    Event.objects.create(project=project, name="signup", contact=None)
    rows = insights.top_contacts(project, "signup")
    assert [(r.email, r.count) for r in rows] == [("user0@example.com", 3), (None, 1)]


@pytest.mark.requires_postgres
def test_time_budget_reports_not_computed_and_does_not_leak(project):
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]

    def slow():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.5)")
        return "done"

    assert insights.within_budget(slow, milliseconds=50) is None
    assert insights.within_budget(lambda: 42, milliseconds=50) == 42
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before
        cursor.execute("SELECT 1")  # the connection is usable afterwards


@pytest.mark.requires_postgres
def test_summaries_without_unique_contacts_past_the_budget(project, seed, insert_many):
    people = seed(project, {"signup": 50, "login": 10})
    # 25,000 events: counting their distinct contacts takes over 10 milliseconds, 1 ms is
    # out of reach; the counts, which come from the rollups and the raw tail, are unaffected.
    insert_many(project, "signup", 20_000, people)
    insert_many(project, "login", 5_000, people)
    exact = insights.name_summaries(project, budget_ms=60_000)
    assert exact.contacts_computed
    assert [(r.name, r.count, r.unique_contacts) for r in exact.rows] == [
        ("signup", 20_050, 40),
        ("login", 5_010, 40),
    ]

    summaries = insights.name_summaries(project, budget_ms=1)
    assert not summaries.contacts_computed
    assert [(r.name, r.count, r.unique_contacts) for r in summaries.rows] == [
        ("signup", 20_050, None),
        ("login", 5_010, None),
    ]
    assert [(r.first_day, r.last_day) for r in summaries.rows] == [
        (r.first_day, r.last_day) for r in exact.rows
    ]

    start = timezone.now() - timedelta(days=90)  # a window: all time uses the API's figures
    detail = insights.name_detail(project, "signup", start, None, budget_ms=1)
    assert (detail.summary.count, detail.summary.unique_contacts) == (20_050, None)
    assert detail.top_contacts is None
    assert detail.usage.total_count == 20_050  # all-time figures are the API's, never budgeted
    # Past the budget the connection is still usable and the setting did not leak.
    assert insights.unique_contacts(project, start, names=["login"]) == {"login": 40}


def test_statement_budget_is_a_plain_block_on_sqlite(project, is_postgres):
    if is_postgres:
        pytest.skip("SQLite behaviour")
    with pytest.raises(ZeroDivisionError):
        insights.within_budget(lambda: 1 / 0)
    assert insights.within_budget(lambda: "ok") == "ok"
