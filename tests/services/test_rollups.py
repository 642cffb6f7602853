"""Names and stats come from the daily rollup plus a live tail and must equal a plain GROUP BY
for any window, before and after the rollup ran, and right after a new track."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db.models import Count
from django.test import override_settings

from plunk_events.models import Contact, Event, EventDailyCount, EventNameTotal
from plunk_events.services import ingest, rollups
from plunk_events.services.validation import parse_track

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)


def seed(project, n=600, days=20, names=("a", "b", "c.d", "e f")):
    rng = random.Random(7)
    contact, _ = Contact.objects.get_or_create(project=project, email="x@example.com")
    rows = []
    for i in range(n):
        at = NOW - timedelta(seconds=rng.randrange(days * 86400))
        rows.append(
            Event(
                project=project,
                contact=contact if i % 3 else None,
                name=rng.choice(names),
                created_at=at,
            )
        )
    Event.objects.bulk_create(rows)


def group_by(project, start=None, end=None):
    qs = Event.objects.filter(project=project)
    if start:
        qs = qs.filter(created_at__gte=start)
    if end:
        qs = qs.filter(created_at__lte=end)
    return Counter(dict(qs.values_list("name").annotate(n=Count("id")).order_by()))


def windows():
    rng = random.Random(3)
    yield None, None
    for _ in range(25):
        a = NOW - timedelta(seconds=rng.randrange(25 * 86400))
        b = a + timedelta(seconds=rng.randrange(10 * 86400))
        yield rng.choice([a, None]), rng.choice([b, None])
    day = (NOW - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    yield day, day + timedelta(days=3) - timedelta(microseconds=1)  # exact full days


def test_counts_equal_group_by_before_and_after_rollup(project):
    seed(project)
    # The read path rolls up lazily; compare every window.
    for start, end in windows():
        assert rollups.event_counts(project, start, end) == +group_by(project, start, end), (
            start,
            end,
        )
    assert EventDailyCount.objects.filter(project=project).exists()
    assert project.__class__.objects.get(pk=project.pk).events_rolled_until is not None
    # Rolling up again changes nothing.
    before = list(
        EventDailyCount.objects.values_list("day", "name", "count").order_by("day", "name")
    )
    assert rollups.rollup(project) == 0
    after = list(
        EventDailyCount.objects.values_list("day", "name", "count").order_by("day", "name")
    )
    assert before == after


def test_tracked_event_counts_immediately_after_rollup(project):
    seed(project, n=100)
    rollups.rollup(project)
    before = rollups.event_counts(project)
    ingest.track(project, parse_track({"email": "new@example.com", "event": "a"}))
    assert rollups.event_counts(project)["a"] == before["a"] + 1
    expected = sorted(group_by(project).items(), key=lambda kv: (-kv[1], kv[0]))
    assert rollups.event_names(project) == [name for name, _ in expected]
    window = rollups.event_counts(project, NOW - timedelta(minutes=5), None)
    assert window == +group_by(project, NOW - timedelta(minutes=5))


def test_name_totals_match_rolled_days(project):
    seed(project)
    rollups.rollup(project)
    rolled_until = project.__class__.objects.get(pk=project.pk).events_rolled_until
    expected = group_by(project, None, rolled_until - timedelta(microseconds=1))
    totals = Counter(
        dict(EventNameTotal.objects.filter(project=project).values_list("name", "count"))
    )
    assert totals == +expected


def test_names_cost_does_not_grow_with_events(project, other_project, django_assert_num_queries):
    seed(project, n=50)
    seed(other_project, n=3000)
    rollups.rollup(project)
    rollups.rollup(other_project)
    # Up to date: the watermark, the name totals, the live tail, the watermark again.
    with django_assert_num_queries(4):
        small = rollups.event_names(project)
    with django_assert_num_queries(4):
        big = rollups.event_names(other_project)
    assert set(small) == set(big) == {"a", "b", "c.d", "e f"}


def test_projects_are_isolated(project, other_project):
    seed(project, n=200)
    seed(other_project, n=50, names=("z",))
    assert set(rollups.event_counts(other_project)) == {"z"}
    assert "z" not in rollups.event_counts(project)


@override_settings(PLUNK_EVENTS={"ROLLUP_LAG_SECONDS": 10 * 86400 + 5 * 3600})
def test_watermark_inside_a_day_splits_that_day_between_rollup_and_raw(project):
    """The watermark's own day is partly in the rollup and partly raw; every window still adds up."""
    seed(project, n=800)
    rollups.rollup(project)
    rolled = project.__class__.objects.get(pk=project.pk).events_rolled_until
    assert rolled.time() != time(0)  # mid-day
    day = rolled.replace(hour=0, minute=0, second=0, microsecond=0)
    for start, end in [
        *windows(),
        (day, None),
        (None, rolled),
        (day + timedelta(hours=1), rolled + timedelta(hours=1)),
        (day, day + timedelta(days=1) - timedelta(microseconds=1)),
        (day - timedelta(days=2), day - timedelta(microseconds=1)),
    ]:
        assert rollups.event_counts(project, start, end) == +group_by(project, start, end), (
            start,
            end,
        )
        per_day = Counter()
        for (_, name), n in rollups.daily_counts(project, start, end).items():
            per_day[name] += n
        assert per_day == +group_by(project, start, end)


def test_rollup_command_purges_expired_idempotency_keys(project):
    from django.core.management import call_command

    from plunk_events.models import IdempotencyKey

    now = datetime.now(UTC)
    for key, expires in (("old", now - timedelta(seconds=1)), ("live", now + timedelta(hours=1))):
        IdempotencyKey.objects.create(
            project=project, key=key, method="POST", path="/v1/track", expires_at=expires
        )
    call_command("plunk_rollup")
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["live"]


def test_reads_never_change_the_project_object_they_are_given(project):
    """The API key cache shares one Project between requests: a read must not write to it."""
    seed(project, n=50)
    before = project.events_rolled_until
    assert rollups.event_names(project)
    assert project.events_rolled_until == before
    assert project.__class__.objects.get(pk=project.pk).events_rolled_until is not None


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_read_does_not_wait_behind_a_delete_holding_the_project_lock(project):
    """``catch_up_rollups`` skips the project row lock a delete (or another rollup) holds: the GET
    answers at once, exactly, from the longer raw tail (here: all events, never rolled up)."""
    import threading

    from django.db import connections, transaction

    from plunk_events.services.references import lock_project

    seed(project, n=300)
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with transaction.atomic():
            lock_project(project)
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(5)
        started = datetime.now(UTC)
        counts = rollups.event_counts(project)
        waited = datetime.now(UTC) - started
    finally:
        release.set()
        holder.join()
    assert counts == group_by(project)
    assert waited < timedelta(seconds=2)
    assert project.__class__.objects.get(pk=project.pk).events_rolled_until is None
