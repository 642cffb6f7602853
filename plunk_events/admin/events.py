"""Events: browse, inspect and delete by name (guarded); the statistics page's index entry."""

from __future__ import annotations

from html import escape as esc

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..models import Contact, Event, EventStatistics
from .actions import delete_events_with_selected_names
from .base import (
    ProjectColumnMixin,
    ProjectScopedMixin,
    admin_url,
    date_time,
    date_time_formatter,
    name_page_url,
    name_stats_url,
    pretty_json,
)
from .filters import (
    NAME_PARAM,
    PROJECT_PARAM,
    EventChangeList,
    EventKindFilter,
    EventNameFilter,
    ProjectFilter,
    known_event_count,
    project_counts,
    selected_project,
)
from .paginator import LargeTablePaginator
from .views import StatsViews

#: Names a prefix search may match at most (an ``IN`` list on the name index).
MAX_PREFIX_NAMES = 500


@admin.register(Event)
class EventAdmin(ProjectColumnMixin, ProjectScopedMixin, admin.ModelAdmin):
    """Events are facts: browse, inspect and delete by name (guarded), never add or edit."""

    list_display = ("name", "contact_link", "project", "created_at")
    list_display_links = ("created_at",)
    list_filter = (ProjectFilter, EventKindFilter, EventNameFilter)
    date_hierarchy = "created_at"
    search_fields = ("name",)  # the search itself is get_search_results()
    search_help_text = (
        "The start of an event name (“email.” finds every email event), or a contact’s exact email."
    )
    list_select_related = False  # rows are read as tuples (EventChangeList.get_results)
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    sortable_by = ("created_at",)
    ordering = ("-created_at", "-id")
    actions = [delete_events_with_selected_names]
    fields = ("id", "project", "contact_link", "name_link", "created", "email_id", "data_json")
    readonly_fields = fields

    class Media:
        css = {"all": ["plunk_events/admin.css"]}

    def get_changelist(self, request, **kwargs):
        return EventChangeList

    def result_rows(self, cl) -> list[SafeString]:
        """The changelist's rows as HTML, one string per row, the markup of Django's
        ``items_for_result`` (checkbox, ``field-*`` classes) with URLs built once per page and
        the standard library's ``escape``: 100 rows through ``items_for_result`` cost more
        than every query of the page."""
        site = self.admin_site.name
        change = reverse(f"{site}:plunk_events_event_change", args=["00000000"])
        contact = reverse(f"{site}:plunk_events_contact_change", args=["00000000"])
        names: dict = {}
        with_project = "project" in cl.list_display
        with_checkbox = "action_checkbox" in cl.list_display
        date_time = date_time_formatter()
        rows = []
        for obj in cl.result_list:
            pk = str(obj.pk)
            key = (obj.project_id, obj.name)
            if key not in names:
                url = name_page_url(site, obj.project_id, obj.name)
                names[key] = (
                    f'<td class="field-name"><a href="{esc(url)}" '
                    f'title="Statistics of this event name">{esc(obj.name)}</a></td>'
                )
            cells = []
            if with_checkbox:
                cells.append(
                    '<td class="action-checkbox"><input type="checkbox" '
                    f'name="{ACTION_CHECKBOX_NAME}" value="{pk}" class="action-select" '
                    f'aria-label="Select this object for an action - {esc(obj.name)}"></td>'
                )
            cells.append(names[key])
            if obj.contact_id:
                url = contact.replace("00000000", str(obj.contact_id))
                cells.append(
                    f'<td class="field-contact_link"><a href="{url}">'
                    f"{esc(obj.contact_email)}</a></td>"
                )
            else:
                cells.append('<td class="field-contact_link">—</td>')
            if with_project:
                cells.append(f'<td class="field-project">{esc(obj.project_name)}</td>')
            cells.append(
                f'<th class="field-created_at nowrap"><a href="'
                f'{change.replace("00000000", pk)}" title="Open this event">'
                f'<time datetime="{obj.created_at.isoformat()}">{date_time(obj.created_at)}'
                "</time></a></th>"
            )
            # Every interpolated text is escaped; ids and URLs reversed here are safe.
            rows.append(mark_safe("".join(cells)))  # noqa: S308
        return rows

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            known_count=known_event_count(request),
        )

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # would bypass the delete guard
        return actions

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Single events are never deleted here; names are, through the guarded action.
        return obj is None and super().has_delete_permission(request)

    def get_search_results(self, request, queryset, search_term):
        """An exact contact email, or event names starting with the term (the project's name
        catalogue lists them, so the query stays an ``IN`` on the (project, name, …) index)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        project = selected_project(request)
        match = Q(name=term)
        if project is not None:
            names = [n for n in project_counts(request, project) if n.startswith(term)]
            match = Q(name__in=names[:MAX_PREFIX_NAMES]) if names else match
        contacts = Contact.objects.filter(email=term.lower())
        if project is not None:
            contacts = contacts.filter(project=project)
        contact_ids = list(contacts.values_list("pk", flat=True)[:100])
        if contact_ids:
            match |= Q(contact_id__in=contact_ids)
        return queryset.filter(match), False

    @admin.display(description="contact")
    def contact_link(self, obj):
        if obj.contact_id is None:
            return "—"
        url = reverse(f"{self.admin_site.name}:plunk_events_contact_change", args=[obj.contact_id])
        return format_html('<a href="{}">{}</a>', url, obj.contact.email)

    @admin.display(description="name")
    def name_link(self, obj):
        url = name_stats_url(self.admin_site.name, obj.project_id, obj.name)
        return format_html('{} (<a href="{}">statistics</a>)', obj.name, url)

    @admin.display(description="created at")
    def created(self, obj):
        return date_time(obj.created_at)

    @admin.display(description="data")
    def data_json(self, obj):
        return pretty_json(obj.data)

    def changelist_view(self, request, extra_context=None):
        query = {PROJECT_PARAM: request.GET[PROJECT_PARAM]} if PROJECT_PARAM in request.GET else {}
        stats_url = admin_url(self.admin_site.name, "plunk_events_event_stats", query=query)
        extra_context = {**(extra_context or {}), "stats_url": stats_url}
        project, name = selected_project(request), request.GET.get(NAME_PARAM)
        if project is not None and name:
            extra_context["name_url"] = name_stats_url(self.admin_site.name, project.pk, name)
            extra_context["name"] = name
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        views = StatsViews(self)
        wrap = self.admin_site.admin_view
        return [
            path("stats/", wrap(views.stats), name="plunk_events_event_stats"),
            path(
                "stats/<uuid:project_id>/<path:name>/delete/",
                wrap(views.name_delete),
                name="plunk_events_event_name_delete",
            ),
            path(
                "stats/<uuid:project_id>/<path:name>/",
                wrap(views.name_detail),
                name="plunk_events_event_name_stats",
            ),
            *super().get_urls(),
        ]


@admin.register(EventStatistics)
class EventStatisticsAdmin(admin.ModelAdmin):
    """The admin index entry of the statistics page; its "list" is the stats page."""

    def _can_view_events(self, request) -> bool:
        return request.user.has_perm("plunk_events.view_event") or request.user.has_perm(
            "plunk_events.change_event"
        )

    def has_module_permission(self, request):
        return self._can_view_events(request)

    def has_view_permission(self, request, obj=None):
        return self._can_view_events(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="plunk_events_eventstatistics_changelist",
            )
        ]

    def changelist_view(self, request, extra_context=None):
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:plunk_events_event_stats"))
