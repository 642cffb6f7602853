"""Admin of plunk_events: event browsing, per-name statistics, guarded bulk delete, and the
projects, contacts, segments and workflows behind them.

Built only from the stock admin (templates, permissions, messages, LogEntry). Every write goes
through :mod:`plunk_events.services`; changelists of big tables stay on the (project, …) indexes:
one project at a time, no full COUNT (:mod:`.paginator`), no facets, no DISTINCT (:mod:`.filters`).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import quote
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from ..models import (
    Contact,
    Event,
    EventStatistics,
    Project,
    Segment,
    Workflow,
    WorkflowStep,
    WorkflowTransition,
)
from ..services import automation, contacts, events, workflows
from ..services.projects import create_project
from ..services.references import condition_event_names
from ..services.workflow_graph import ActiveExecutions
from ..workflow_models import ACTIVE_STATUSES
from .actions import delete_events_with_selected_names, regenerate_project_keys, render_keys
from .filters import (
    PROJECT_PARAM,
    EventChangeList,
    EventKindFilter,
    EventNameFilter,
    ProjectFilter,
    selected_project,
)
from .forms import SegmentForm, WorkflowForm
from .paginator import LargeTablePaginator
from .views import StatsViews


def pretty_json(value) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="plunk-json">{}</pre>', text)


def adopt(obj, saved) -> None:
    """Copy a row saved by a service onto the admin's instance (which the admin logs and shows)."""
    for f in obj._meta.concrete_fields:
        setattr(obj, f.attname, getattr(saved, f.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def name_stats_url(site_name: str, project_id, name: str) -> str:
    return reverse(f"{site_name}:plunk_events_event_name_stats", args=[project_id, quote(name)])


def admin_url(site_name: str, viewname: str, *args, query: dict | None = None) -> str:
    """``reverse()`` within the admin site ``site_name``, with an encoded query string."""
    url = reverse(f"{site_name}:{viewname}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


class ProjectScopedMixin:
    """Changelists of per-project tables always show one project, chosen with ``?project=``."""

    def changelist_view(self, request, extra_context=None):
        if (
            request.method == "GET"
            and PROJECT_PARAM not in request.GET
            and IS_POPUP_VAR not in request.GET
        ):
            first = Project.objects.order_by("name", "pk").values_list("pk", flat=True).first()
            if first is not None:
                query = request.GET.copy()
                query[PROJECT_PARAM] = str(first)
                return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)


# ---------------------------------------------------------------------------------------------
# Events


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


# ---------------------------------------------------------------------------------------------
# Contacts


@admin.register(Contact)
class ContactAdmin(ProjectScopedMixin, admin.ModelAdmin):
    """Contacts are written by track and the API; here they are read, and deleted with events."""

    list_display = ("email", "project", "subscribed", "created_at", "event_count")
    list_filter = (ProjectFilter, "subscribed")
    search_fields = ("email",)  # the search itself is get_search_results()
    search_help_text = "Exact email address."
    list_select_related = ("project",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    sortable_by = ("created_at", "email")
    ordering = ("-created_at", "-id")
    fields = (
        "id",
        "project",
        "email",
        "subscribed",
        "event_count",
        "data_json",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    change_form_template = "admin/plunk_events/contact/change_form.html"

    class Media:
        css = {"all": ["plunk_events/admin.css"]}

    def get_queryset(self, request):
        # A correlated count per displayed row on the (project, contact, …) index: no GROUP BY
        # over the events table and no query per row.
        events = (
            Event.objects.filter(project=OuterRef("project"), contact=OuterRef("pk"))
            .order_by()
            .values("contact")
            .annotate(n=Count("*"))
            .values("n")
        )
        return super().get_queryset(request).annotate(event_count=Coalesce(Subquery(events), 0))

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        return queryset.filter(email=term), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="events", ordering=None)
    def event_count(self, obj):
        return f"{obj.event_count:,}"

    @admin.display(description="data")
    def data_json(self, obj):
        return pretty_json(obj.data)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        contact = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if contact is not None:
            page = events.list_events(contact.project, contact_id=contact.pk, limit=20)
            site = self.admin_site.name
            extra_context["timeline"] = [
                {
                    **event,
                    "url": reverse(f"{site}:plunk_events_event_change", args=[event["id"]]),
                    "name_url": name_stats_url(site, contact.project_id, event["name"]),
                    "data_text": Truncator(
                        json.dumps(event["data"], sort_keys=True, ensure_ascii=False)
                    ).chars(120)
                    if event["data"] is not None
                    else "",
                }
                for event in page.events
            ]
            extra_context["timeline_more"] = page.has_more
            extra_context["timeline_url"] = admin_url(
                site,
                "plunk_events_event_changelist",
                query={PROJECT_PARAM: str(contact.project_id), "q": contact.email},
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_deleted_objects(self, objs, request):
        """A summary instead of Django's walk over every related event row."""
        objs = list(objs)
        counts = dict(
            Event.objects.filter(contact__in=[o.pk for o in objs])
            .values_list("contact_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        total = sum(counts.values())
        to_delete = [
            f"Contact: {o.email} ({counts.get(o.pk, 0):,} events of project {o.project})"
            for o in objs
        ]
        model_count = {"contacts": len(objs), "events": total}
        perms_needed = set()
        if total and not request.user.has_perm("plunk_events.delete_event"):
            perms_needed.add("event")
        return to_delete, model_count, perms_needed, []

    def delete_model(self, request, obj):
        contacts.delete_contact(obj.project, obj.pk)

    def delete_queryset(self, request, queryset):
        for contact in queryset.select_related("project"):
            contacts.delete_contact(contact.project, contact.pk)


# ---------------------------------------------------------------------------------------------
# Segments and workflows


def _event_name_links(site_name: str, project_id, names) -> str:
    if not names:
        return "—"
    return format_html_join(
        ", ",
        '<a href="{}">{}</a>',
        ((name_stats_url(site_name, project_id, n), n) for n in sorted(names)),
    )


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = (
        "name",
        "project",
        "type",
        "slug",
        "track_membership",
        "member_count",
        "event_names",
    )
    list_filter = ("project", "type", "track_membership")
    search_fields = ("name",)
    readonly_fields = ("slug", "member_count", "event_names", "created_at", "updated_at")
    list_select_related = ("project",)

    def get_fields(self, request, obj=None):
        return (
            "project",
            "name",
            "slug",
            "description",
            "type",
            "condition",
            "event_names",
            "track_membership",
            "member_count",
            "created_at",
            "updated_at",
        )

    def get_readonly_fields(self, request, obj=None):
        extra = ("project",) if obj is not None else ()
        return (*self.readonly_fields, *extra)

    @admin.display(description="slug")
    def slug(self, obj):
        return obj.slug if obj.name else "—"

    @admin.display(description="referenced event names")
    def event_names(self, obj):
        return _event_name_links(
            self.admin_site.name, obj.project_id, condition_event_names(obj.condition)
        )

    def save_model(self, request, obj, form, change):
        values = {
            k: form.cleaned_data[k]
            for k in ("name", "description", "type", "condition", "track_membership")
        }
        if change:
            saved = automation.update_segment(obj.project, obj.pk, **values)
        else:
            saved = automation.create_segment(form.cleaned_data["project"], **values)
        adopt(obj, saved)

    def delete_model(self, request, obj):
        automation.delete_segment(obj.project, obj.pk)

    def delete_queryset(self, request, queryset):
        for segment in queryset.select_related("project"):
            automation.delete_segment(segment.project, segment.pk)


class ReadOnlyInline(admin.TabularInline):
    """Shown, not edited: the graph is edited through the API (``/workflows/<id>/steps`` …)."""

    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WorkflowStepInline(ReadOnlyInline):
    model = WorkflowStep
    fields = ("order", "type", "name", "config", "position")
    readonly_fields = fields
    ordering = ("order", "id")
    verbose_name_plural = "steps (the nodes of the graph)"


class WorkflowTransitionInline(ReadOnlyInline):
    model = WorkflowTransition
    fk_name = "workflow"
    fields = ("from_step", "to_step", "condition", "wait_outcome", "priority")
    readonly_fields = fields
    ordering = ("created_at", "id")
    verbose_name_plural = "transitions (the edges of the graph)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("from_step", "to_step")


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    form = WorkflowForm
    inlines = [WorkflowStepInline, WorkflowTransitionInline]
    list_display = ("name", "project", "trigger", "enabled", "allow_reentry", "created_at")
    list_filter = ("project", "enabled", "trigger_type")
    search_fields = ("name",)
    list_select_related = ("project",)
    readonly_fields = ("trigger_statistics", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        fields = ["project", "name", "description", "event_name", "enabled", "allow_reentry"]
        if obj is not None:
            fields[4:4] = ["trigger_statistics"]
            fields += ["created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        extra = ("project",) if obj is not None else ()
        return (*self.readonly_fields, *extra)

    @admin.display(description="trigger")
    def trigger(self, obj):
        name = obj.trigger_event_name
        if name is None:
            return obj.get_trigger_type_display()
        return format_html(
            '<a href="{}">{}</a>', name_stats_url(self.admin_site.name, obj.project_id, name), name
        )

    @admin.display(description="trigger event")
    def trigger_statistics(self, obj):
        name = obj.trigger_event_name
        if name is None:
            return obj.get_trigger_type_display()
        url = name_stats_url(self.admin_site.name, obj.project_id, name)
        return format_html('{} (<a href="{}">statistics</a>)', name, url)

    def save_model(self, request, obj, form, change):
        """Written by the service in save_related() (the inlines are read-only)."""

    def save_formset(self, request, form, formset, change):
        """The inlines are read-only: nothing to save."""

    def save_related(self, request, form, formsets, change):
        cleaned = form.cleaned_data
        values = {k: cleaned[k] for k in ("name", "description", "enabled", "allow_reentry")}
        if change:
            saved = workflows.update_workflow(
                form.instance.project,
                form.instance.pk,
                event_name=cleaned.get("event_name"),
                **values,
            )
        else:
            saved = workflows.create_workflow(
                cleaned["project"], event_name=cleaned["event_name"], **values
            )
        adopt(form.instance, saved)
        for fs in formsets:  # read by the change message
            fs.new_objects, fs.changed_objects, fs.deleted_objects = [], [], []

    def has_delete_permission(self, request, obj=None):
        """Not while the workflow has RUNNING or WAITING executions (the service refuses)."""
        if obj is not None and obj.executions.filter(status__in=ACTIVE_STATUSES).exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        workflows.delete_workflow(obj.project, obj.pk)

    def delete_queryset(self, request, queryset):
        for workflow in queryset.select_related("project"):
            try:
                workflows.delete_workflow(workflow.project, workflow.pk)
            except ActiveExecutions as refused:
                self.message_user(request, f"{workflow}: {refused.message}", messages.WARNING)


# ---------------------------------------------------------------------------------------------
# Projects


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "public_key", "secret_key_masked", "created_at", "links")
    search_fields = ("name",)
    actions = [regenerate_project_keys]
    readonly_fields = (
        "id",
        "public_key",
        "secret_key_masked",
        "created_at",
        "events_rolled_until",
        "links",
    )

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name",)
        return ("name", *self.readonly_fields)

    def has_delete_permission(self, request, obj=None):
        # Deleting a project removes all of its events and contacts: not a one-click admin job.
        return False

    @admin.display(description="secret key")
    def secret_key_masked(self, obj):
        """Only the stored prefix: the secret key is hashed, shown once when it is made."""
        return f"{obj.secret_key_prefix}…" if obj.secret_key_prefix else "—"

    @admin.display(description="browse")
    def links(self, obj):
        site, query = self.admin_site.name, {PROJECT_PARAM: str(obj.pk)}
        return format_html(
            '<a href="{}">events</a> · <a href="{}">contacts</a> · <a href="{}">statistics</a>',
            admin_url(site, "plunk_events_event_changelist", query=query),
            admin_url(site, "plunk_events_contact_changelist", query=query),
            admin_url(site, "plunk_events_event_stats", query=query),
        )

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            saved = create_project(obj.name)
            adopt(obj, saved)
            obj.secret_key = saved.secret_key  # for response_add, the one page that shows it

    def response_add(self, request, obj, post_url_continue=None):
        return render_keys(self, request, [obj], title=f"Project “{obj}” created")
