"""Per-name summaries behind the admin's statistics pages.

Totals and daily volumes are read as :func:`rollups.event_counts` reads them for ``GET
/events/stats`` (the daily rollup plus the raw tail after its watermark, with its consistency
check), the names table's figures and its chart in one read (:func:`window_figures`); all-time figures of one name from :func:`rollups.event_usage`
(``GET /events/<name>/usage``), and references follow :func:`references.find_references`, so the
admin and the API never disagree. Added here is only what the API lacks: unique contacts, first
and last seen per name inside a window (UTC days from the rollup for the names table, exact
times for one name's page), and a name's top contacts.

Counting distinct contacts must read every event of the window. On PostgreSQL those queries run
under a ``statement_timeout`` budget and report "not computed" (``None``) when it is exceeded, so
a huge window degrades to a missing column instead of a slow page.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Case, Count, F, Max, Min, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from ..conf import conf
from ..constants import is_system_event
from ..models import Contact, Event, EventDailyCount, EventNameTotal, Project
from . import rollups
from .references import References, deletion_allowed, references_by_name

T = TypeVar("T")

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for statement_timeout

#: Time budget of the distinct-contact queries on PostgreSQL, in milliseconds.
CONTACTS_BUDGET_MS = 1000


@contextmanager
def statement_budget(alias: str, milliseconds: int):
    """Run the block's queries under ``SET LOCAL statement_timeout`` on PostgreSQL.

    The block runs in its own transaction (or savepoint) that is always rolled back, so the
    setting never outlives it; use it for reads only. Exceeding the budget raises
    ``DatabaseError`` (``QueryCanceled``) out of the block. A no-op wrapper elsewhere.
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{milliseconds}"])
        yield
        transaction.set_rollback(True, using=alias)


def within_budget(fn: Callable[[], T], milliseconds: int = CONTACTS_BUDGET_MS) -> T | None:
    """``fn()`` under :func:`statement_budget`, or ``None`` when it ran out of time."""
    alias = router.db_for_read(Event)
    try:
        with statement_budget(alias, milliseconds):
            return fn()
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
            raise
        return None


def _window(qs, start: datetime | None, end: datetime | None):
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lte=end)
    return qs


# ---------------------------------------------------------------------------------------------
# All-time counts (the event changelist's name filter and count)


def all_time_counts(project: Project) -> Counter:
    """Events per name, all time: what :func:`rollups.event_counts` answers without a window
    (``GET /events/names``), read in one statement instead of four.

    The rollup's totals and the raw events after the watermark are a ``UNION ALL`` whose tail
    reads the watermark in a subquery, so the three come from one snapshot and a concurrent
    rollup cannot count an event twice (``event_counts`` re-reads the watermark to be sure).
    ``project`` must have been loaded by this request: its watermark decides whether the
    rollup is due (:func:`rollups.catch_up_rollups`, as every read path does) and bounds the
    tail's index range (the planner cannot see the subquery's value; the watermark only
    moves forward, so the subquery's is the same or later).
    """
    due = timezone.now() - timedelta(seconds=2 * conf.ROLLUP_LAG_SECONDS)
    loaded = project.events_rolled_until
    if loaded is None or loaded < due:
        loaded = rollups.catch_up_rollups(project)
    watermark = Project.objects.filter(pk=project.pk).values("events_rolled_until")[:1]
    tail = (
        Event.objects.filter(project=project, created_at__gte=loaded or EPOCH)
        .filter(created_at__gte=Coalesce(Subquery(watermark), Value(EPOCH)))
        .values_list("name")
        .annotate(n=Count("id"))
        .order_by()
    )
    totals = EventNameTotal.objects.filter(project=project).values_list("name", "count")
    counts: Counter = Counter()
    for name, n in totals.union(tail, all=True):
        counts[name] += n
    return +counts


#: Before every event: the tail's start when nothing was rolled up yet.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Per-name summary rows


@dataclass
class NameSummary:
    name: str
    count: int
    #: Distinct contacts with the name in the window; None when not computed (time budget).
    unique_contacts: int | None
    first_seen: datetime | None
    last_seen: datetime | None
    share: float
    references: References = field(default_factory=References)
    #: First and last UTC day with events in the window (the names table).
    first_day: date | None = None
    last_day: date | None = None

    @property
    def is_system(self) -> bool:
        return is_system_event(self.name)

    @property
    def can_delete(self) -> bool:
        return deletion_allowed(self.name, self.references)


@dataclass
class NameSummaries:
    rows: list[NameSummary]
    total: int
    #: False when the distinct-contact query ran out of its time budget or was skipped.
    contacts_computed: bool
    #: True when it was skipped because the window holds more than ``contacts_up_to`` events.
    contacts_skipped: bool = False
    #: The chart's ``{(day, name): count}`` (:attr:`WindowFigures.daily`) and its names.
    daily: dict = field(default_factory=dict)
    charted: list[str] = field(default_factory=list)
    #: The one name charted on request, or None for the biggest names stacked.
    chart_name: str | None = None


def unique_contacts(
    project: Project,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    names: Iterable[str] | None = None,
    budget_ms: int = CONTACTS_BUDGET_MS,
) -> dict[str, int] | None:
    """Distinct contacts per name in the window (exact), or None past the time budget."""
    qs = _window(Event.objects.filter(project=project), start, end)
    if names is not None:
        qs = qs.filter(name__in=list(names))
    query = qs.values_list("name").annotate(n=Count("contact_id", distinct=True)).order_by()
    return within_budget(lambda: dict(query), budget_ms)


def seen_range(
    project: Project, names: Iterable[str], start: datetime | None, end: datetime | None
) -> dict[str, tuple[datetime, datetime]]:
    """First and last event of each name inside the window, exact, in O(names) index probes
    (a name's page; the names table reads whole days from the rollup, :func:`window_figures`).

    Names already in the rollup catalogue get two correlated ``ORDER BY created_at LIMIT 1``
    subqueries on the (project, name, created_at) index; names newer than the rollup have
    events only in the raw tail after the watermark, which a grouped query covers cheaply.
    """
    names = set(names)
    if not names:
        return {}
    events = _window(
        Event.objects.filter(project=project, name=OuterRef("name")), start, end
    ).values("created_at")
    rows = (
        EventNameTotal.objects.filter(project=project, name__in=names)
        .annotate(
            first=Subquery(events.order_by("created_at", "id")[:1]),
            last=Subquery(events.order_by("-created_at", "-id")[:1]),
        )
        .values_list("name", "first", "last")
    )
    out = {name: (first, last) for name, first, last in rows if first is not None}
    missing = names - set(out)
    if missing:
        tail = _window(Event.objects.filter(project=project, name__in=missing), start, end)
        grouped = tail.values_list("name").annotate(first=Min("created_at"), last=Max("created_at"))
        for name, first, last in grouped.order_by():
            out[name] = (first, last)
    return out


@dataclass
class WindowFigures:
    """What the statistics page shows of a window, from one consistent read of the rollup."""

    #: Events per name, exactly :func:`rollups.event_counts` (``GET /events/stats``).
    counts: Counter
    #: First and last UTC day with events of each name in the window.
    days: dict[str, tuple[date, date]]
    #: ``{(day, name): count}`` of the charted names, the others summed under ``others``.
    daily: dict[tuple[date, str], int]
    #: The charted names.
    charted: list[str]


def window_figures(
    project: Project,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    chart: list[str] | None = None,
    top: int = 6,
    others: str | None = None,
) -> WindowFigures:
    """Counts per name, their first and last day, and the chart's daily series, in one read.

    The window is split as :func:`rollups.event_counts` splits it (whole days from the daily
    rollup, the rest from raw events) and read under the same watermark check, so the counts
    are the API's. Per name, the rollup answers ``SUM``/``MIN(day)``/``MAX(day)`` in one
    grouped query and the chart's days in another (``chart`` names, else the ``top`` names by
    count, every other name summed per day under ``others`` when given, and only the requested
    names when ``chart`` names some with events in the window); the raw part (minutes
    after the watermark) is read once, by (day, name), and serves all three.
    """

    def read(rolled):
        split = rollups.split_window(start, end, rolled)
        counts: Counter = Counter()
        first: dict[str, date] = {}
        last: dict[str, date] = {}

        def seen(name: str, low: date, high: date) -> None:
            first[name] = min(first.get(name, low), low)
            last[name] = max(last.get(name, high), high)

        daily_rows = EventDailyCount.objects.filter(project=project)
        if split.last_day is not None:
            daily_rows = daily_rows.filter(day__lte=split.last_day)
            if split.first_day is not None:
                daily_rows = daily_rows.filter(day__gte=split.first_day)
            per_name = (
                daily_rows.values_list("name")
                .annotate(n=Sum("count"), low=Min("day"), high=Max("day"))
                .order_by()
            )
            for name, n, low, high in per_name:
                counts[name] += n
                seen(name, low, high)
        raw = list(
            rollups.raw_events(project, split.raw)
            .annotate(day=TruncDate("created_at", tzinfo=UTC))
            .values_list("day", "name")
            .annotate(n=Count("id"))
            .order_by()
        )
        for day, name, n in raw:
            counts[name] += n
            seen(name, day, day)
        counts = +counts
        requested = [n for n in (chart or []) if n in counts]
        charted = requested or [name for name, _ in rollups.ranked(counts)[:top]]
        rest = None if requested else others
        daily: Counter = Counter()
        if split.last_day is not None and charted:
            if rest is None:
                rows = daily_rows.filter(name__in=charted).values_list("day", "name", "count")
            else:
                label = Case(When(name__in=charted, then=F("name")), default=Value(rest))
                rows = (
                    daily_rows.annotate(label=label)
                    .values_list("day", "label")
                    .annotate(n=Sum("count"))
                    .order_by()
                )
            for day, name, n in rows:
                daily[(day, name)] += n
        keep = set(charted)
        for day, name, n in raw:
            if name in keep:
                daily[(day, name)] += n
            elif rest is not None:
                daily[(day, rest)] += n
        days = {name: (first[name], last[name]) for name in counts}
        return WindowFigures(counts, days, dict(+daily), charted)

    return rollups.consistent(project, read, rollups.catch_up_rollups(project))


def name_summaries(
    project: Project,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    budget_ms: int = CONTACTS_BUDGET_MS,
    contacts_up_to: int | None = None,
    chart: str | None = None,
    chart_top: int = 6,
    others: str | None = None,
) -> NameSummaries:
    """One row per event name with events in the window, count descending, and the chart's
    daily series (``chart``, else the ``chart_top`` biggest names and ``others``).

    ``count`` is exactly what ``GET /events/stats`` answers for the same window; first and
    last seen are UTC days, from the same read (:func:`window_figures`). Distinct contacts read
    every event of the window: with ``contacts_up_to`` they are counted only when the window
    holds at most that many events (the page stays as fast as the rollup reads).
    """
    figures = window_figures(
        project, start, end, chart=[chart] if chart else None, top=chart_top, others=others
    )
    counts = figures.counts
    total = sum(counts.values())
    skipped = contacts_up_to is not None and total > contacts_up_to
    contacts = None if skipped else unique_contacts(project, start, end, budget_ms=budget_ms)
    refs = references_by_name(project, counts)
    rows = []
    for name, n in rollups.ranked(counts):
        first, last = figures.days[name]
        rows.append(
            NameSummary(
                name=name,
                count=n,
                unique_contacts=None if contacts is None else contacts.get(name, 0),
                first_seen=None,
                last_seen=None,
                share=n / total if total else 0.0,
                references=refs[name],
                first_day=first,
                last_day=last,
            )
        )
    return NameSummaries(
        rows,
        total,
        contacts is not None,
        skipped,
        daily=figures.daily,
        charted=figures.charted,
        chart_name=chart if figures.charted == [chart] else None,
    )


# ---------------------------------------------------------------------------------------------
# Periods with events (the changelist's date drill-down)


def _event_years(project: Project) -> list[date]:
    """Years with events: the first and last event (``MIN``/``MAX`` answered by the
    (project, created_at) index), and an ``EXISTS`` probe for each year between them."""
    events = Event.objects.filter(project=project)
    bounds = events.aggregate(first=Min("created_at"), last=Max("created_at"))
    if bounds["first"] is None:
        return []
    first, last = bounds["first"].astimezone(UTC).year, bounds["last"].astimezone(UTC).year
    years = [first]
    for year in range(first + 1, last):
        start = datetime(year, 1, 1, tzinfo=UTC)
        if events.filter(
            created_at__gte=start, created_at__lt=start.replace(year=year + 1)
        ).exists():
            years.append(year)
    if last != first:
        years.append(last)
    return [date(y, 1, 1) for y in years]


def event_periods(project: Project, unit: str, year: int | None = None, month: int | None = None):
    """The years, months or days (the first ``date`` of each) in which ``project`` has events,
    inside ``year`` (and ``month``) when given, in UTC days: months and days are the daily
    rollup's days plus the distinct days of the live tail after its watermark (minutes of
    events: the read paths keep it short); years come from :func:`_event_years`.
    """
    if unit == "year":
        return _event_years(project)
    daily = EventDailyCount.objects.filter(project=project, count__gt=0)
    # The watermark as loaded: if a rollup moved it since, the tail read here starts earlier
    # and only repeats days the rollup has too (the result is a set).
    rolled = project.events_rolled_until
    tail = Event.objects.filter(project=project)
    if rolled is not None:
        tail = tail.filter(created_at__gte=rolled)
    if year is not None:
        first = date(year, month or 1, 1)
        after = date(year + 1, 1, 1) if (month or 12) == 12 else date(year, month + 1, 1)
        daily = daily.filter(day__gte=first, day__lt=after)
        start = datetime.combine(first, time.min, tzinfo=UTC)
        tail = tail.filter(
            created_at__gte=start, created_at__lt=datetime.combine(after, time.min, tzinfo=UTC)
        )
    days = list(daily.order_by().values_list("day", flat=True).distinct())
    days += [d.date() for d in tail.datetimes("created_at", "day", tzinfo=UTC)]
    if unit == "month":
        return sorted({d.replace(day=1) for d in days})
    return sorted(set(days))


# ---------------------------------------------------------------------------------------------
# One name


@dataclass
class TopContact:
    contact_id: uuid.UUID | None
    email: str | None
    count: int


@dataclass
class NameDetail:
    name: str
    #: All-time figures and references, exactly ``GET /events/<name>/usage``.
    usage: rollups.Usage
    #: The name's row for the window (count from ``event_counts``).
    summary: NameSummary
    #: Most active contacts in the window; None when not computed (time budget).
    top_contacts: list[TopContact] | None
    window_total: int = 0


def top_contacts(
    project: Project,
    name: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    limit: int = 10,
    budget_ms: int = CONTACTS_BUDGET_MS,
) -> list[TopContact] | None:
    """The contacts with the most events of ``name`` in the window, or None past the budget."""
    qs = _window(Event.objects.filter(project=project, name=name), start, end)
    query = (
        qs.values("contact_id")
        .annotate(n=Count("id"))
        .order_by("-n", F("contact_id").asc(nulls_last=True))[:limit]
    )
    rows = within_budget(lambda: list(query), budget_ms)
    if rows is None:
        return None
    ids = [r["contact_id"] for r in rows if r["contact_id"] is not None]
    emails = dict(Contact.objects.filter(project=project, pk__in=ids).values_list("id", "email"))
    return [TopContact(r["contact_id"], emails.get(r["contact_id"]), r["n"]) for r in rows]


def name_detail(
    project: Project,
    name: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    budget_ms: int = CONTACTS_BUDGET_MS,
) -> NameDetail:
    """Everything the admin's page of one event name shows, apart from its chart."""
    usage = rollups.event_usage(project, name)
    counts = rollups.event_counts(project, start, end)
    total = sum(counts.values())
    n = counts.get(name, 0)
    if start is None and end is None:
        contacts: int | None = usage.unique_contacts
    else:
        per_name = unique_contacts(project, start, end, names=[name], budget_ms=budget_ms)
        contacts = None if per_name is None else per_name.get(name, 0)
    first, last = seen_range(project, [name], start, end).get(name, (None, None))
    summary = NameSummary(
        name=name,
        count=n,
        unique_contacts=contacts,
        first_seen=first,
        last_seen=last,
        share=n / total if total else 0.0,
        references=usage.references,
        first_day=first.astimezone(UTC).date() if first else None,
        last_day=last.astimezone(UTC).date() if last else None,
    )
    return NameDetail(
        name=name,
        usage=usage,
        summary=summary,
        top_contacts=top_contacts(project, name, start, end, budget_ms=budget_ms),
        window_total=total,
    )
