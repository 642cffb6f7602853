"""Changelist filters that stay on the (project, …) indexes of big tables.

The Event changelist is always scoped to one project (every Event index starts with it), its
name filter lists the project's most frequent names from the rollup catalogue rather than a
``DISTINCT`` over the table, and its date drill-down is computed from the calendar instead of
``SELECT DISTINCT date_trunc(…)`` over millions of rows.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import date

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.db.models.functions import Left, Right
from django.db.models.lookups import Exact
from django.utils import formats, timezone
from django.utils.text import capfirst

from ..constants import (
    CONTACT_SUBSCRIBED,
    CONTACT_UNSUBSCRIBED,
    EMAIL_EVENT_PREFIX,
    SEGMENT_EVENT_PREFIX,
    is_system_event,
)
from ..models import Event, Project
from ..services import rollups

PROJECT_PARAM = "project"
NAME_PARAM = "event_name"


def system_event_q() -> Q:
    """SQL twin of :func:`constants.is_system_event`, case-sensitive on both backends.

    ``startswith`` would be case-insensitive on SQLite (LIKE), so prefixes are compared with
    ``LEFT()``/``RIGHT()`` and ``=``.
    """

    def prefix(text: str):
        return Exact(Left("name", len(text)), text)

    def suffix(text: str):
        return Exact(Right("name", len(text)), text)

    return (
        Q(prefix(EMAIL_EVENT_PREFIX))
        | Q(name__in=[CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED])
        | (Q(prefix(SEGMENT_EVENT_PREFIX)) & (Q(suffix(".entry")) | Q(suffix(".exit"))))
    )


def selected_project(request) -> Project | None:
    """The project chosen with ``?project=<uuid>``, or None."""
    raw = request.GET.get(PROJECT_PARAM)
    if not raw:
        return None
    try:
        pk = uuid.UUID(raw)
    except ValueError:
        return None
    cache = request.__dict__.setdefault("_plunk_projects", {})
    if pk not in cache:
        cache[pk] = Project.objects.filter(pk=pk).first()
    return cache[pk]


class ProjectFilter(admin.SimpleListFilter):
    """One project at a time: the changelist redirects to the first project when none is set."""

    title = "project"
    parameter_name = PROJECT_PARAM

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in Project.objects.values_list("pk", "name")]

    def choices(self, changelist):
        # No "All" choice: a cross-project list cannot use the (project, …) indexes.
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string(
                    {self.parameter_name: lookup}, [NAME_PARAM]
                ),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(project_id=uuid.UUID(value))
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc


class EventKindFilter(admin.SimpleListFilter):
    title = "event type"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("custom", "Custom events"), ("system", "System events")]

    def queryset(self, request, queryset):
        if self.value() == "system":
            return queryset.filter(system_event_q())
        if self.value() == "custom":
            return queryset.exclude(system_event_q())
        return queryset


class EventNameFilter(admin.SimpleListFilter):
    """The most frequent names of the chosen project, with their all-time counts."""

    title = "event name"
    parameter_name = NAME_PARAM
    limit = 25

    def lookups(self, request, model_admin):
        project = selected_project(request)
        if project is None:
            return []
        ranked = rollups.ranked(rollups.event_counts(project))
        kind = request.GET.get("kind")
        if kind in ("system", "custom"):
            ranked = [(n, c) for n, c in ranked if is_system_event(n) == (kind == "system")]
        top = ranked[: self.limit]
        current = self.value()
        if current and current not in {name for name, _ in top}:
            top.append((current, dict(ranked).get(current, 0)))
        return [(name, f"{name} ({count:,})") for name, count in top]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(name=self.value())
        return queryset


class EventChangeList(ChangeList):
    """ChangeList with a date drill-down that costs no query and an index-friendly ordering."""

    def _get_deterministic_ordering(self, ordering):
        # Break created_at ties by id in the same direction, as the (…, created_at, id) indexes do.
        ordering = list(ordering)
        if ordering and ordering[0] in ("created_at", "-created_at") and len(ordering) == 1:
            ordering.append("id" if ordering[0] == "created_at" else "-id")
        return super()._get_deterministic_ordering(ordering)

    def date_drilldown(self) -> dict:
        """Context for ``admin/date_hierarchy.html`` without ``SELECT DISTINCT`` on the events.

        Years run from the project's first event (one index probe) to this year; months and
        days are the calendar's, up to today. Dates are in the current time zone, as Django's
        own ``created_at__year/month/day`` filtering reads them.
        """
        field = self.date_hierarchy
        year_field, month_field, day_field = (f"{field}__{p}" for p in ("year", "month", "day"))
        year, month, day = (self.params.get(f) for f in (year_field, month_field, day_field))

        def link(filters):
            return self.get_query_string(filters, [f"{field}__"])

        today = timezone.localdate()
        try:
            if year and month and day:
                chosen = date(int(year), int(month), int(day))
                return {
                    "show": True,
                    "back": {
                        "link": link({year_field: year, month_field: month}),
                        "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
                    },
                    "choices": [
                        {"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}
                    ],
                }
            if year and month:
                y, m = int(year), int(month)
                days = [date(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1)]
                return {
                    "show": True,
                    "back": {"link": link({year_field: year}), "title": year},
                    "choices": [
                        {
                            "link": link({year_field: year, month_field: month, day_field: d.day}),
                            "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                        }
                        for d in days
                        if d <= today
                    ],
                }
            if year:
                y = int(year)
                months = [date(y, m, 1) for m in range(1, 13)]
                return {
                    "show": True,
                    "back": {"link": link({}), "title": "All dates"},
                    "choices": [
                        {
                            "link": link({year_field: year, month_field: m.month}),
                            "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT")),
                        }
                        for m in months
                        if m <= today
                    ],
                }
        except ValueError:
            return {"show": False}
        first_year = self._first_year() or today.year
        return {
            "show": True,
            "back": None,
            "choices": [
                {"link": link({year_field: str(y)}), "title": str(y)}
                for y in range(first_year, today.year + 1)
            ],
        }

    def _first_year(self) -> int | None:
        try:
            project_id = uuid.UUID(self.params.get(PROJECT_PARAM, ""))
        except ValueError:
            return None
        first = (
            Event.objects.filter(project_id=project_id)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return timezone.localtime(first).year if first else None
