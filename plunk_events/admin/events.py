"""Events: browse, inspect and delete by name (guarded); the statistics page's index entry."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from ..models import Contact, Event, EventStatistics
from .actions import delete_events_with_selected_names
from .base import ProjectScopedMixin, admin_url, name_stats_url, pretty_json
from .filters import (
    PROJECT_PARAM,
    EventChangeList,
    EventKindFilter,
    EventNameFilter,
    ProjectFilter,
    selected_project,
)
from .paginator import LargeTablePaginator
from .views import StatsViews


@admin.register(Event)
class EventAdmin(ProjectScopedMixin, admin.ModelAdmin):
    """Events are facts: browse, inspect and delete by name (guarded), never add or edit."""

    list_display = ("name", "contact_link", "project", "created_at")
    list_filter = (ProjectFilter, EventKindFilter, EventNameFilter)
    date_hierarchy = "created_at"
    search_fields = ("name",)  # the search itself is get_search_results()
    search_help_text = "Exact event name or exact contact email."
    list_select_related = ("contact", "project")
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    sortable_by = ("created_at",)
    ordering = ("-created_at", "-id")
    actions = [delete_events_with_selected_names]
    fields = ("id", "project", "contact_link", "name_link", "created_at", "email_id", "data_json")
    readonly_fields = fields

    class Media:
        css = {"all": ["plunk_events/admin.css"]}

    def get_changelist(self, request, **kwargs):
        return EventChangeList

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
        """Exact name or exact contact email, each answered by a (project, …) index."""
        term = search_term.strip()
        if not term:
            return queryset, False
        contacts = Contact.objects.filter(email=term.lower())
        project = selected_project(request)
        if project is not None:
            contacts = contacts.filter(project=project)
        contact_ids = list(contacts.values_list("pk", flat=True)[:100])
        return queryset.filter(Q(name=term) | Q(contact_id__in=contact_ids)), False

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

    @admin.display(description="data")
    def data_json(self, obj):
        return pretty_json(obj.data)

    def changelist_view(self, request, extra_context=None):
        query = {PROJECT_PARAM: request.GET[PROJECT_PARAM]} if PROJECT_PARAM in request.GET else {}
        stats_url = admin_url(self.admin_site.name, "plunk_events_event_stats", query=query)
        extra_context = {**(extra_context or {}), "stats_url": stats_url}
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
