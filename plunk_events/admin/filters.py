"""Changelist filters that stay on the (project, …) indexes of big tables.

The Event changelist is always scoped to one project (every Event index starts with it), its
name filter lists the project's most frequent names from the rollup catalogue rather than a
``DISTINCT`` over the table, and its date drill-down is read from the daily rollup instead of
``SELECT DISTINCT date_trunc(…)`` over millions of rows.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from html import escape as esc
from typing import NamedTuple

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.db.models.functions import Left, Right
from django.db.models.lookups import Exact
from django.utils import formats
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext

from ..constants import (
    CONTACT_SUBSCRIBED,
    CONTACT_UNSUBSCRIBED,
    EMAIL_EVENT_PREFIX,
    SEGMENT_EVENT_PREFIX,
    is_system_event,
)
from ..models import Project
from ..services import insights, rollups

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


def all_projects(request) -> list[Project]:
    """Every project by name, read once per request: the project filter lists them all, and
    the chosen one is picked from them."""
    if "_plunk_projects" not in request.__dict__:
        request._plunk_projects = list(Project.objects.order_by("name", "pk"))
    return request._plunk_projects


def selected_project(request) -> Project | None:
    """The project chosen with ``?project=<uuid>``, or None."""
    raw = request.GET.get(PROJECT_PARAM)
    if not raw:
        return None
    try:
        pk = uuid.UUID(raw)
    except ValueError:
        return None
    return next((p for p in all_projects(request) if p.pk == pk), None)


def project_counts(request, project: Project) -> dict[str, int]:
    """All-time counts per name of ``project`` (the rollup and its live tail), once per request;
    ``project`` comes from :func:`all_projects`, loaded by this request."""
    cache = request.__dict__.setdefault("_plunk_counts", {})
    if project.pk not in cache:
        cache[project.pk] = insights.all_time_counts(project)
    return cache[project.pk]


#: Changelist parameters that leave the count answerable by the rollup.
COUNTABLE_PARAMS = {PROJECT_PARAM, NAME_PARAM, "kind", "o", "p"}


def known_event_count(request) -> int | None:
    """The exact number of events the changelist lists, from the rollup, when only the project,
    event type and name filters are set (the same totals ``GET /events/stats`` reads); None
    when a search or a date narrows the list."""
    if not set(request.GET) <= COUNTABLE_PARAMS:
        return None
    project = selected_project(request)
    if project is None:
        return None
    counts = project_counts(request, project)
    name, kind = request.GET.get(NAME_PARAM), request.GET.get("kind")
    if name:
        counts = {name: counts.get(name, 0)}
    if kind in ("system", "custom"):
        counts = {n: c for n, c in counts.items() if is_system_event(n) == (kind == "system")}
    return sum(counts.values())


class ProjectFilter(admin.SimpleListFilter):
    """One project at a time: the changelist redirects to the first project when none is set."""

    title = "project"
    parameter_name = PROJECT_PARAM

    def lookups(self, request, model_admin):
        return [(str(p.pk), p.name) for p in all_projects(request)]

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
    """The most frequent names of the chosen project, with their all-time counts (the title
    says so: they do not follow the date filter)."""

    title = "event name (all-time counts)"
    parameter_name = NAME_PARAM
    limit = 25

    def lookups(self, request, model_admin):
        project = selected_project(request)
        if project is None:
            return []
        ranked = rollups.ranked(project_counts(request, project))
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


class EventRow(NamedTuple):
    """One row of the Event changelist: the columns it shows, read as a tuple. A page of model
    instances (an event and its contact each, with deferred fields) costs more to build than
    the query that reads it."""

    id: uuid.UUID
    project_id: uuid.UUID
    contact_id: uuid.UUID | None
    name: str
    created_at: datetime
    contact_email: str | None
    #: Only read when the list shows the Project column.
    project_name: str | None = None

    @property
    def pk(self) -> uuid.UUID:
        return self.id


class EventChangeList(ChangeList):
    """ChangeList with a date drill-down that costs no query, an index-friendly ordering, and
    rows read as tuples (:class:`EventRow`) and rendered in one pass
    (:meth:`EventAdmin.result_rows`) instead of Django's per-cell lookups and a checkbox widget
    template per row."""

    def get_results(self, request):
        super().get_results(request)
        # The page's rows (a sliced queryset until now) as tuples of the shown columns.
        columns = ["id", "project_id", "contact_id", "name", "created_at", "contact__email"]
        if "project" in self.list_display:
            columns.append("project__name")
        self.result_list = [EventRow(*row) for row in self.result_list.values_list(*columns)]

    def result_list_context(self) -> dict:
        """The context of ``change_list_results.html`` (what ``{% result_list %}`` builds), the
        rows joined into one string."""
        headers = list(result_headers(self))
        rows = self.model_admin.result_rows(self)
        return {
            "cl": self,
            "result_headers": headers,
            "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
            # Each row's cells are escaped by result_rows().
            "rows_html": mark_safe("".join(f"<tr>{row}</tr>\n" for row in rows)),  # noqa: S308
        }

    def action_fields_html(self) -> SafeString:
        """The action form's fields as Django's widgets render them (``ActionForm``: the
        ``action`` select and the hidden ``select_across``), for ``event/actions.html``."""
        choices = self.model_admin.get_action_choices(self._request)
        options = "".join(
            f'<option value="{esc(value)}"{"" if value else " selected"}>{esc(label)}</option>'
            for value, label in choices
        )
        return mark_safe(  # noqa: S308 (values and labels escaped)
            f'<label>{esc(gettext("Action:"))} <select name="action" required>{options}'
            '</select></label><input type="hidden" name="select_across" value="0" '
            'class="select-across">'
        )

    def _get_deterministic_ordering(self, ordering):
        # Break created_at ties by id in the same direction, as the (…, created_at, id) indexes do.
        ordering = list(ordering)
        if ordering and ordering[0] in ("created_at", "-created_at") and len(ordering) == 1:
            ordering.append("id" if ordering[0] == "created_at" else "-id")
        return super()._get_deterministic_ordering(ordering)

    def date_drilldown(self) -> dict:
        """Context for ``admin/date_hierarchy.html`` without ``SELECT DISTINCT`` on the events.

        Only periods that have events are offered: :func:`insights.event_periods` reads them from
        the daily rollup (UTC days) and the live tail, never from the events table at large.
        """
        project = self._project()

        def periods(unit, *args):
            return insights.event_periods(project, unit, *args) if project else []

        return date_drilldown(self, periods)

    def __init__(self, request, *args, **kwargs):
        self._request = request  # for the request's cached project (selected_project)
        super().__init__(request, *args, **kwargs)

    def _project(self) -> Project | None:
        return selected_project(self._request)


def date_drilldown(changelist, periods) -> dict:
    """Context for ``admin/date_hierarchy.html`` offering only the periods that have rows.

    ``periods("year")``, ``periods("month", year)`` and ``periods("day", year, month)`` give the
    dates (first of the year, month, or the day) that have rows, however a changelist finds them
    cheaply; Django's own drill-down runs a ``SELECT DISTINCT`` of truncated dates instead.
    """
    field = changelist.date_hierarchy
    year_field, month_field, day_field = (f"{field}__{p}" for p in ("year", "month", "day"))
    year, month, day = (changelist.params.get(f) for f in (year_field, month_field, day_field))

    def link(filters):
        return changelist.get_query_string(filters, [f"{field}__"])

    def title(d: date, format_name: str) -> str:
        return capfirst(formats.date_format(d, format_name))

    try:
        if year and month and day:
            chosen = date(int(year), int(month), int(day))
            back = {
                "link": link({year_field: year, month_field: month}),
                "title": title(chosen, "YEAR_MONTH_FORMAT"),
            }
            return {
                "show": True,
                "back": back,
                "choices": [{"title": title(chosen, "MONTH_DAY_FORMAT")}],
            }
        if year and month:
            choices = [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": title(d, "MONTH_DAY_FORMAT"),
                }
                for d in periods("day", int(year), int(month))
            ]
            back = {"link": link({year_field: year}), "title": year}
            return {"show": True, "back": back, "choices": choices}
        if year:
            choices = [
                {
                    "link": link({year_field: year, month_field: m.month}),
                    "title": title(m, "YEAR_MONTH_FORMAT"),
                }
                for m in periods("month", int(year))
            ]
            return {
                "show": True,
                "back": {"link": link({}), "title": "All dates"},
                "choices": choices,
            }
        choices = [
            {"link": link({year_field: str(y.year)}), "title": str(y.year)} for y in periods("year")
        ]
    except (ValueError, OverflowError):
        return {"show": False}
    return {"show": True, "back": None, "choices": choices}
