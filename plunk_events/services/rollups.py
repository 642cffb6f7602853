"""Names, stats, daily counts and usage: the rollup plus a live tail of raw events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Case, Count, F, Max, Min, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..conf import conf
from ..constants import is_system_event
from ..models import Event, EventDailyCount, EventDeletion, EventNameTotal, Project
from .db import db_for_write
from .references import References, deletion_allowed, deletion_json, find_references

# Names and stats: rollup + live tail
#
# ``EventDailyCount`` holds, per (UTC day, name), the events created before the project's
# watermark ``Project.events_rolled_until``; the row of the watermark's own day is partial (it
# covers that day up to the watermark). ``EventNameTotal`` holds the all-time sums. The rollup
# advances the watermark to ``now - ROLLUP_LAG_SECONDS``, so the live tail that reads count from
# raw events is a few minutes of events at most.


def _floor_day(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(value: datetime) -> datetime:
    floor = _floor_day(value)
    return floor if floor == value else floor + timedelta(days=1)


def rollup_rows(events) -> list[dict]:
    """(day, name, n, first, last) aggregates of an event queryset."""
    return list(
        events.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "name")
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by()
    )


def rollup(project: Project, *, now: datetime | None = None) -> int:
    """Fold the events created up to ``now - ROLLUP_LAG_SECONDS`` into the rollup tables.

    Incremental and idempotent; returns the number of (day, name) groups added. Runs from
    :func:`catch_up_rollups` on the read paths and from ``manage.py plunk_rollup``. The lag must
    exceed the longest track transaction (give the ingest role a ``statement_timeout`` well below
    it), because an event that commits with a ``created_at`` behind the watermark would not be
    counted. Never waits for the project's row lock where the database can skip it (PostgreSQL):
    if a delete or another rollup holds it, this one returns 0 and the reads count the longer
    tail instead. It changes only database rows, never the ``project`` passed in (that object
    may be shared, e.g. by the API key cache).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.ROLLUP_LAG_SECONDS)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        locked = (
            Project.objects.using(alias)
            .select_for_update(
                skip_locked=connections[alias].features.has_select_for_update_skip_locked
            )
            .filter(pk=project.pk)
            .only("id", "events_rolled_until")
            .first()
        )
        if locked is None:  # another worker is rolling this project up right now
            return 0
        start = locked.events_rolled_until
        events = Event.objects.using(alias).filter(project=project)
        if start is None:
            first = events.order_by("created_at").values_list("created_at", flat=True).first()
            start = min(first, cutoff) if first else cutoff
        rows = []
        if start < cutoff:
            rows = rollup_rows(events.filter(created_at__gte=start, created_at__lt=cutoff))
            add_to_rollup(alias, project, rows)
        watermark = max(start, cutoff)
        Project.objects.using(alias).filter(pk=project.pk).update(events_rolled_until=watermark)
    return len(rows)


def add_to_rollup(alias: str, project: Project, rows: list[dict]) -> None:
    """Add (day, name, n, first, last) groups to the daily counts and the name totals.

    ``n`` may be negative (events removed behind the watermark); rows that reach zero go.
    Call under the project lock.
    """
    if not rows:
        return
    names = {r["name"] for r in rows}
    daily = {
        (row.day, row.name): row
        for row in EventDailyCount.objects.using(alias).filter(
            project=project, day__in={r["day"] for r in rows}, name__in=names
        )
    }
    totals = {
        t.name: t
        for t in EventNameTotal.objects.using(alias).filter(project=project, name__in=names)
    }
    for r in rows:
        day_row = daily.get((r["day"], r["name"]))
        if day_row is None:
            day_row = daily[(r["day"], r["name"])] = EventDailyCount(
                project=project, day=r["day"], name=r["name"], count=0
            )
        day_row.count += r["n"]
        total = totals.get(r["name"])
        if total is None:
            total = totals[r["name"]] = EventNameTotal(
                project=project, name=r["name"], count=0, first_seen=r["first"], last_seen=r["last"]
            )
        total.count += r["n"]
        total.first_seen = min(total.first_seen, r["first"])
        total.last_seen = max(total.last_seen, r["last"])
    _save_counts(alias, EventDailyCount, daily.values(), ["count"])
    _save_counts(alias, EventNameTotal, totals.values(), ["count", "first_seen", "last_seen"])


def _save_counts(alias: str, model, rows: Iterable, fields: list[str]) -> None:
    """Insert new count rows, update changed ones, delete the ones that reached zero."""
    rows = list(rows)
    gone = [r.pk for r in rows if r.pk is not None and r.count <= 0]
    model.objects.using(alias).filter(pk__in=gone).delete()
    model.objects.using(alias).bulk_create(
        [r for r in rows if r.pk is None and r.count > 0], batch_size=1000
    )
    model.objects.using(alias).bulk_update(
        [r for r in rows if r.pk is not None and r.count > 0], fields, batch_size=1000
    )


def _watermark(project: Project) -> datetime | None:
    return (
        Project.objects.filter(pk=project.pk).values_list("events_rolled_until", flat=True).first()
    )


def catch_up_rollups(project: Project) -> datetime | None:
    """The read paths' explicit write: fold the tail into the rollup when it is older than twice
    ``ROLLUP_LAG_SECONDS``; returns the watermark.

    A GET calls this before it counts, so its raw tail stays a couple of minutes of events however
    long nobody ran ``plunk_rollup``. It never blocks on a lock (see :func:`rollup`); the counts
    are exact with or without it (rollup + live tail), it only keeps them cheap.
    """
    rolled = _watermark(project)
    due = timezone.now() - timedelta(seconds=2 * conf.ROLLUP_LAG_SECONDS)
    if rolled is None or rolled < due:
        rollup(project)
        rolled = _watermark(project)
    return rolled


@dataclass(frozen=True)
class _WindowSplit:
    """Which part of ``[start, end]`` the rollup answers and which parts raw events answer."""

    first_day: Any  # date or None (open)
    last_day: Any  # date or None: inclusive; may be the watermark's partial day
    raw: list[tuple[datetime | None, datetime | None, bool]]  # (from, to, to_inclusive)


def split_window(start: datetime | None, end: datetime | None, rolled: datetime | None):
    if rolled is None:
        return _WindowSplit(None, None, [(start, end, True)])
    full_start = _ceil_day(start) if start is not None else None
    full_end = _floor_day(end + timedelta(microseconds=1)) if end is not None else None
    if full_end is not None and full_end <= _floor_day(rolled):
        covered_end, last_day = full_end, (full_end - timedelta(days=1)).date()
    else:  # up to the watermark, including its own partial day
        covered_end, last_day = rolled, _floor_day(rolled).date()
    if full_start is not None and full_start >= covered_end:
        return _WindowSplit(None, None, [(start, end, True)])
    raw = []
    if start is not None and start < full_start:
        raw.append((start, full_start, False))
    raw.append((covered_end, end, True))
    return _WindowSplit(full_start.date() if full_start else None, last_day, raw)


def raw_events(project: Project, ranges) -> Any:
    """Events in any of the (from, to, to_inclusive) ranges."""
    parts = []
    for low, high, inclusive in ranges:
        part = Q()
        if low is not None:
            part &= Q(created_at__gte=low)
        if high is not None:
            part &= Q(created_at__lte=high) if inclusive else Q(created_at__lt=high)
        if not part:  # an open range: every event (``Q() | …`` would drop it)
            return Event.objects.filter(project=project)
        parts.append(part)
    match = Q(pk__in=[])
    for part in parts:
        match |= part
    return Event.objects.filter(project=project).filter(match)


def consistent(
    project: Project, read: Callable[[datetime | None], Any], rolled: datetime | None
) -> Any:
    """Run ``read(rolled)`` and retry if a rollup moved the watermark meanwhile.

    Each statement sees its own snapshot; a rollup committing between the rollup read and the
    raw read would count its events twice. The watermark and the rollup rows change in one
    transaction, so an unchanged watermark after the reads proves they were consistent.
    """
    for _ in range(5):
        result = read(rolled)
        again = _watermark(project)
        if again == rolled:
            return result
        rolled = again
    return read(rolled)


def event_counts(
    project: Project, start: datetime | None = None, end: datetime | None = None
) -> Counter:
    """Exact number of events per name with ``start <= created_at <= end`` (either open).

    Days before the rollup watermark come from ``EventDailyCount`` (or ``EventNameTotal`` for
    all time); the partial first day and everything after the watermark are counted from the
    events themselves, so an event counts the moment its track has returned.
    """

    def read(rolled):
        counts: Counter = Counter()
        if rolled is not None and start is None and end is None:
            totals = EventNameTotal.objects.filter(project=project)
            counts.update(dict(totals.values_list("name", "count")))
            ranges = [(rolled, None, True)]
        else:
            split = split_window(start, end, rolled)
            if split.last_day is not None:
                daily = EventDailyCount.objects.filter(project=project, day__lte=split.last_day)
                if split.first_day is not None:
                    daily = daily.filter(day__gte=split.first_day)
                counts.update(dict(daily.values_list("name").annotate(n=Sum("count")).order_by()))
            ranges = split.raw
        raw = raw_events(project, ranges).values_list("name").annotate(n=Count("id"))
        counts.update(dict(raw.order_by()))
        return +counts

    return consistent(project, read, catch_up_rollups(project))


def ranked(counts: Counter) -> list[tuple[str, int]]:
    """Count descending, then name ascending."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def event_names(project: Project) -> list[str]:
    """All event names of the project, most frequent first (``GET /events/names``)."""
    return [name for name, _ in ranked(event_counts(project))]


def event_stats(
    project: Project, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """``[{name, count}]`` for the window, count descending (``GET /events/stats``)."""
    return [{"name": name, "count": n} for name, n in ranked(event_counts(project, start, end))]


def daily_counts(
    project: Project,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    names: Iterable[str] | None = None,
    others: str | None = None,
) -> dict[tuple[Any, str], int]:
    """``{(day, name): count}`` of the window for charts, from the same rollup and tail.

    With ``names`` and ``others``, the events of every other name are counted too, summed per
    day under the key ``others`` (a chart's "other names" without one row per name and day).
    """
    names = list(names) if names is not None else None
    grouped = names is not None and others is not None

    def label():
        return Case(When(name__in=names, then=F("name")), default=Value(others))

    def read(rolled):
        out: Counter = Counter()
        split = split_window(start, end, rolled)
        if split.last_day is not None:
            daily = EventDailyCount.objects.filter(project=project, day__lte=split.last_day)
            if split.first_day is not None:
                daily = daily.filter(day__gte=split.first_day)
            if grouped:
                daily = (
                    daily.annotate(label=label())
                    .values_list("day", "label")
                    .annotate(n=Sum("count"))
                    .order_by()
                )
            elif names is not None:
                daily = daily.filter(name__in=names).values_list("day", "name", "count")
            else:
                daily = daily.values_list("day", "name", "count")
            for day, name, n in daily:
                out[(day, name)] += n
        raw = raw_events(project, split.raw)
        if names is not None and not grouped:
            raw = raw.filter(name__in=names)
        rows = (
            raw.annotate(
                day=TruncDate("created_at", tzinfo=UTC), label=label() if grouped else F("name")
            )
            .values_list("day", "label")
            .annotate(n=Count("id"))
            .order_by()
        )
        for day, name, n in rows:
            out[(day, name)] += n
        return dict(+out)

    return consistent(project, read, catch_up_rollups(project))


@dataclass
class Usage:
    name: str
    references: References
    total_count: int
    unique_contacts: int
    #: The name's RUNNING delete job, live or abandoned, if any.
    deletion: EventDeletion | None = None

    @property
    def is_system_event(self) -> bool:
        return is_system_event(self.name)

    @property
    def can_delete(self) -> bool:
        return deletion_allowed(self.name, self.references, self.deletion)

    def as_dict(self) -> dict[str, Any]:
        out = {
            **self.references.as_usage(),
            "totalCount": self.total_count,
            "uniqueContacts": self.unique_contacts,
            "canDelete": self.can_delete,
            "isSystemEvent": self.is_system_event,
        }
        if self.deletion is not None:
            out["deletion"] = deletion_json(self.deletion)
        return out


def event_usage(project: Project, name: str) -> Usage:
    """References, total, exact distinct contacts and running delete job of one name
    (``GET /events/<name>/usage``).

    The total comes from the rollup like ``/events/stats``; distinct contacts are not additive,
    so they are counted from the events, as a hashed ``DISTINCT`` over the (project, name) index
    range rather than a sorting ``count(DISTINCT …)``.
    """
    total = event_counts(project).get(name, 0)
    contacts = (
        Event.objects.filter(project=project, name=name, contact__isnull=False)
        .values("contact_id")
        .distinct()
        .count()
    )
    deletion = EventDeletion.objects.filter(
        project=project, name=name, status=EventDeletion.Status.RUNNING
    ).first()
    return Usage(name, find_references(project, name), total, contacts, deletion)
