"""The Event admin's extra pages: per-name statistics, one name's page, its guarded delete.

Mounted by :meth:`EventAdmin.get_urls`; the numbers come from :mod:`services.insights`, which reads
the same functions as ``GET /events/stats`` and ``/usage``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape as esc
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from ..conf import conf
from ..constants import is_system_event
from ..models import Project
from ..services import insights, rollups
from .actions import execute_deletions, plan_deletions, render_confirmation
from .base import URL_SAFE, name_page_url
from .charts import OTHER_KEY, PALETTE, Chart, build_chart
from .filters import NAME_PARAM, PROJECT_PARAM

#: Windows with more events than this count their unique contacts only when asked (?contacts=1):
#: the distinct count reads every event of the window, the rest of the page reads the rollups.
CONTACTS_AUTO_EVENTS = 50_000

WINDOW_CHOICES = (("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("all", "All time"))
DEFAULT_WINDOW = "30"

#: Sortable columns of the stats table: query value -> sort key of a NameSummary.
SORT_KEYS = {
    "name": lambda r: r.name,
    "count": lambda r: r.count,
    "unique": lambda r: -1 if r.unique_contacts is None else r.unique_contacts,
    "first": lambda r: r.first_day or date.min,
    "last": lambda r: r.last_day or date.min,
    "share": lambda r: r.share,
    "system": lambda r: (r.is_system, r.name),
    "refs": lambda r: len(r.references.segments) + len(r.references.workflows),
}
COLUMNS = (
    ("name", "Event name"),
    ("count", "Events"),
    ("unique", "Unique contacts"),
    ("first", "First seen"),
    ("last", "Last seen"),
    ("share", "Share"),
    ("system", "System"),
    ("refs", "Referenced by"),
)
#: Column tooltips.
COLUMN_HELP = {
    "first": "The first day (UTC) with events of this name in the window",
    "last": "The last day (UTC) with events of this name in the window",
}


def share_label(share: float, count: int) -> str:
    """``12.3%``; a name that has events never reads ``0.0%`` but ``<0.1%``."""
    pct = share * 100
    if count and pct < 0.05:
        return "<0.1%"
    return f"{pct:.1f}%"


def _next_order(current: str, key: str) -> str:
    """Clicking a column toggles it; a new column starts A-Z for names, largest first otherwise."""
    if current == key:
        return f"-{key}"
    if current == f"-{key}":
        return key
    return key if key == "name" else f"-{key}"


@dataclass
class Window:
    """A time window in whole UTC days, the unit of the rollups and of the API's date filters."""

    key: str
    start: datetime | None
    end: datetime | None
    start_date: date | None = None
    end_date: date | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        if self.key == "custom":
            return f"{self.start_date or '…'} to {self.end_date or 'today'}"
        return dict(WINDOW_CHOICES)[self.key]

    def params(self) -> dict[str, str]:
        if self.key != "custom":
            return {"window": self.key}
        out = {"window": "custom"}
        if self.start_date:
            out["start"] = self.start_date.isoformat()
        if self.end_date:
            out["end"] = self.end_date.isoformat()
        return out

    def api_params(self) -> dict[str, str]:
        """The equivalent ``startDate``/``endDate`` of ``GET /events/stats``."""
        out = {}
        if self.start is not None:
            out["startDate"] = self.start.date().isoformat()
        if self.end is not None:
            out["endDate"] = self.end.date().isoformat()
        return out

    def chart_days(self, daily: dict) -> tuple[date, date]:
        today = timezone.now().astimezone(UTC).date()
        last = self.end_date or today
        first = self.start_date or min((day for day, _ in daily), default=last)
        return first, last


def parse_window(query) -> Window:
    """``window=7|30|90|all`` or ``window=custom&start=YYYY-MM-DD&end=YYYY-MM-DD`` (inclusive)."""
    key = query.get("window") or DEFAULT_WINDOW
    today = timezone.now().astimezone(UTC).date()
    if key == "custom":
        try:
            start_date = date.fromisoformat(query["start"]) if query.get("start") else None
            end_date = date.fromisoformat(query["end"]) if query.get("end") else None
        except ValueError:
            window = parse_window({"window": DEFAULT_WINDOW})
            window.error = "Dates must look like 2025-01-31; showing the last 30 days."
            return window
        if start_date and end_date and end_date < start_date:
            start_date, end_date = end_date, start_date
        return Window(
            "custom",
            datetime.combine(start_date, time.min, tzinfo=UTC) if start_date else None,
            datetime.combine(end_date, time.max, tzinfo=UTC) if end_date else None,
            start_date,
            end_date,
        )
    if key == "all":
        return Window("all", None, None)
    if key not in dict(WINDOW_CHOICES):
        key = DEFAULT_WINDOW
    start_date = today - timedelta(days=int(key) - 1)
    return Window(key, datetime.combine(start_date, time.min, tzinfo=UTC), None, start_date)


def _pick_project(request, projects: list[Project]) -> Project | None:
    """The project of ``?project=``, else the first one by name, from the selector's list."""
    if PROJECT_PARAM not in request.GET:
        return projects[0] if projects else None
    try:
        pk = uuid.UUID(request.GET[PROJECT_PARAM])
    except ValueError:
        return None
    return next((p for p in projects if p.pk == pk), None)


def _chart(project: Project, window: Window, name: str, title: str) -> Chart:
    """One name's daily events."""
    daily = rollups.daily_counts(project, window.start, window.end, names=[name])
    return _build_chart(window, daily, title)


def _build_chart(window: Window, daily: dict, title: str) -> Chart:
    first, last = window.chart_days(daily)
    today = timezone.now().astimezone(UTC).date()
    return build_chart(daily, first, last, title=title, today=today)


def _options(values: list[str], selected: str | None) -> SafeString:
    """``<option>`` elements, escaped, the ``selected`` one marked."""
    return mark_safe(  # noqa: S308 (every value is escaped)
        "".join(
            f'<option value="{esc(v)}"{" selected" if v == selected else ""}>{esc(v)}</option>'
            for v in values
        )
    )


class StatsViews:
    """Views bound to the Event ModelAdmin (for its site, permissions and media)."""

    def __init__(self, model_admin):
        self.model_admin = model_admin
        self.site = model_admin.admin_site

    def _context(self, request, **extra):
        # The templates' {% url 'admin:…' %} (and the stock base template's) then resolve
        # within this site, whatever its name.
        request.current_app = self.site.name
        return {
            **self.site.each_context(request),
            "opts": self.model_admin.model._meta,
            "media": self.model_admin.media,
            **extra,
        }

    def _check_view(self, request) -> None:
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied

    def url(self, viewname: str, *args, query: dict | None = None) -> str:
        url = reverse(f"{self.site.name}:{viewname}", args=args)
        return f"{url}?{urlencode(query)}" if query else url

    def name_url(self, project: Project, name: str, window: Window | None = None) -> str:
        return self.url(
            "plunk_events_event_name_stats",
            project.pk,
            quote(name),
            query=window.params() if window else None,
        )

    def events_url(self, project: Project, name: str | None = None) -> str:
        query = {PROJECT_PARAM: str(project.pk)}
        if name is not None:
            query[NAME_PARAM] = name
        return self.url("plunk_events_event_changelist", query=query)

    # -----------------------------------------------------------------------------------------

    def stats(self, request):
        self._check_view(request)
        projects = list(Project.objects.order_by("name", "pk"))
        project = _pick_project(request, projects)
        if project is None and PROJECT_PARAM in request.GET:
            raise Http404("No such project")
        window = parse_window(request.GET)
        if window.error:
            messages.warning(request, window.error)
        context = self._context(
            request,
            title="Event statistics",
            subtitle=str(project) if project else None,
            project=project,
            projects=projects,
            window=window,
            window_choices=self._window_links(request, window),
            changelist_url=self.events_url(project)
            if project
            else self.url("plunk_events_event_changelist"),
        )
        if project is None:
            return TemplateResponse(request, "admin/plunk_events/event/stats.html", context)
        order = request.GET.get("o") or "-count"
        field = order.lstrip("-")
        if field not in SORT_KEYS:
            order, field = "-count", "count"
        want_contacts = request.GET.get("contacts") == "1" or field == "unique"
        # The names, their figures and the chart's series come from one read of the rollup.
        summaries = insights.name_summaries(
            project,
            window.start,
            window.end,
            budget_ms=conf.ADMIN_STATS_BUDGET_MS,
            contacts_up_to=None if want_contacts else CONTACTS_AUTO_EVENTS,
            chart=request.GET.get("chart") or None,
            chart_top=len(PALETTE),
            others=OTHER_KEY,
        )
        rows = sorted(summaries.rows, key=SORT_KEYS[field], reverse=order.startswith("-"))
        chart_name = summaries.chart_name
        base = {PROJECT_PARAM: str(project.pk), **window.params()}
        if want_contacts:
            base["contacts"] = "1"
        table_rows = self._stats_rows(project, window, rows)
        context.update(
            summaries=summaries,
            rows=table_rows,
            # Two hundred rows or options through template loops cost more than their queries.
            rows_html=mark_safe("".join(item["html"] for item in table_rows)),  # noqa: S308
            chart_options=_options([r.name for r in summaries.rows], chart_name),
            columns=[
                {
                    "key": key,
                    "label": label,
                    "help": COLUMN_HELP.get(key, ""),
                    "numeric": key in ("count", "unique", "share"),
                    "sorted": field == key,
                    "descending": field == key and order.startswith("-"),
                    "url": "?"
                    + urlencode(
                        {
                            **base,
                            **({"chart": chart_name} if chart_name else {}),
                            "o": _next_order(order, key),
                        }
                    ),
                }
                for key, label in COLUMNS
            ],
            chart=_build_chart(
                window,
                summaries.daily,
                f"Daily events of “{chart_name}”" if chart_name else "Daily events by name",
            ),
            chart_name=chart_name,
            order=order,
            base_query=base,
            api_query=urlencode(window.api_params()),
            count_contacts_url="?" + urlencode({**base, "contacts": "1", "o": order}),
            events_url=self.events_url(project),
        )
        return TemplateResponse(request, "admin/plunk_events/event/stats.html", context)

    def _stats_rows(self, project: Project, window: Window, rows) -> list[dict]:
        """The names table's rows, their HTML built here with the standard library's
        ``escape`` and the URL prefix and query worked out once: 200 rows through the template
        language (or ``format_html`` and a ``reverse()`` each) cost more than every query of
        the page."""
        prefix = name_page_url(self.site.name, project.pk, "x")[:-2]
        suffix = "/?" + urlencode(window.params())
        return [self._stats_row(r, prefix, suffix) for r in rows]

    def _stats_row(self, r, prefix: str, suffix: str) -> dict:
        segments = [self._segment_link(s) for s in r.references.segments]
        workflows = [self._workflow_link(w) for w in r.references.workflows]
        url = prefix + url_quote(quote(r.name), safe=URL_SAFE) + suffix
        refs = "".join(
            f'<a href="{esc(x["url"])}" class="plunk-ref">{kind}: {esc(x["label"])}</a>'
            for kind, links in (("Segment", segments), ("Workflow", workflows))
            for x in links
        )
        unique = (
            '<span class="plunk-muted" title="Not counted">—</span>'
            if r.unique_contacts is None
            else f"{r.unique_contacts:,}"
        )
        cells = [
            f'<th scope="row"><a href="{esc(url)}">{esc(r.name)}</a></th>',
            f'<td class="num">{r.count:,}</td>',
            f'<td class="num">{unique}</td>',
        ]
        for value in (r.first_day, r.last_day):
            if value is None:
                cells.append('<td class="plunk-nowrap">—</td>')
                continue
            iso = value.isoformat()
            cells.append(f'<td class="plunk-nowrap"><time datetime="{iso}">{iso}</time></td>')
        cells.append(
            '<td class="num"><span class="plunk-share" aria-hidden="true">'
            f'<span style="width: {r.share * 100:.2f}%"></span></span>'
            f'<span class="plunk-share-value">{esc(share_label(r.share, r.count))}</span></td>'
        )
        cells.append(
            '<td><span class="plunk-tag" title="Recorded by Plunk itself">System</span></td>'
            if r.is_system
            else '<td><span class="plunk-muted">Custom</span></td>'
        )
        refs = refs or '<span class="plunk-muted">—</span>'
        cells.append(f'<td class="plunk-refs-cell">{refs}</td>')
        return {
            "row": r,
            "url": url,
            "segments": segments,
            "workflows": workflows,
            # Every interpolated text above is escaped (names, labels, URLs).
            "html": mark_safe(f'<tr class="plunk-name-row">{"".join(cells)}</tr>'),  # noqa: S308
        }

    def _window_links(self, request, window: Window) -> list[dict]:
        keep = {
            k: v for k, v in request.GET.items() if k in (PROJECT_PARAM, "o", "chart", "contacts")
        }
        return [
            {
                "label": label,
                "selected": window.key == key,
                "url": "?" + urlencode({**keep, "window": key}),
            }
            for key, label in WINDOW_CHOICES
        ]

    def _segment_link(self, segment) -> dict:
        return {
            "label": segment.name,
            "url": self.url("plunk_events_segment_change", segment.pk),
        }

    def _workflow_link(self, workflow) -> dict:
        return {
            "label": workflow.name,
            "url": self.url("plunk_events_workflow_change", workflow.pk),
        }

    # -----------------------------------------------------------------------------------------

    def _project_and_name(self, project_id, quoted_name: str) -> tuple[Project, str]:
        project = get_object_or_404(Project, pk=project_id)
        name = unquote(quoted_name)
        if not name:
            raise Http404("No event name")
        return project, name

    def name_detail(self, request, project_id, name):
        self._check_view(request)
        project, name = self._project_and_name(project_id, name)
        window = parse_window(request.GET)
        if window.error:
            messages.warning(request, window.error)
        detail = insights.name_detail(
            project, name, window.start, window.end, budget_ms=conf.ADMIN_STATS_BUDGET_MS
        )
        usage = detail.usage
        if not usage.total_count and usage.deletion is None and not usage.references:
            raise Http404(f"No events with the name “{name}” in project {project}.")
        context = self._context(
            request,
            title=f"Event “{name}”",
            subtitle=str(project),
            project=project,
            name=name,
            detail=detail,
            share_pct=detail.summary.share * 100,
            share_label=share_label(detail.summary.share, detail.summary.count),
            window=window,
            window_choices=self._window_links(request, window),
            chart=_chart(project, window, name, f"Daily events of “{name}”"),
            segments=[self._segment_link(s) for s in detail.usage.references.segments],
            workflows=[self._workflow_link(w) for w in detail.usage.references.workflows],
            top_contacts=[
                {
                    "contact": c,
                    "url": self.url("plunk_events_contact_change", c.contact_id)
                    if c.contact_id
                    else None,
                }
                for c in detail.top_contacts or []
            ],
            top_contacts_computed=detail.top_contacts is not None,
            is_system=is_system_event(name),
            stats_url=self.url(
                "plunk_events_event_stats",
                query={PROJECT_PARAM: str(project.pk), **window.params()},
            ),
            events_url=self.events_url(project, name),
            changelist_url=self.events_url(project),
            delete_url=self.url("plunk_events_event_name_delete", project.pk, quote(name)),
            can_delete_perm=self.model_admin.has_delete_permission(request),
            deletion=detail.usage.deletion,
            deletion_alive=detail.usage.deletion is not None
            and detail.usage.deletion.worker_alive(),
        )
        return TemplateResponse(request, "admin/plunk_events/event/name_detail.html", context)

    def name_delete(self, request, project_id, name):
        """The detail page's delete button: confirmation on GET, guarded delete on POST."""
        if not self.model_admin.has_delete_permission(request):
            raise PermissionDenied
        project, name = self._project_and_name(project_id, name)
        plans = plan_deletions([(project, name)], site_name=self.site.name)
        detail_url = self.name_url(project, name)
        if request.method == "POST" and request.POST.get("post") == "yes":
            deleted = execute_deletions(self.model_admin, request, plans)
            if deleted:
                return HttpResponseRedirect(
                    self.url("plunk_events_event_stats", query={PROJECT_PARAM: str(project.pk)})
                )
            return HttpResponseRedirect(detail_url)
        return render_confirmation(
            self.model_admin,
            request,
            plans,
            hidden=[],
            cancel_url=detail_url,
            form_action=request.path,
        )
