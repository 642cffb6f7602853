"""Contacts: read with their latest events; deleted (with their events) through the service."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.text import Truncator

from ..models import Contact, Event
from ..services import contacts, events
from .base import ProjectScopedMixin, admin_url, name_stats_url, pretty_json
from .filters import PROJECT_PARAM, ProjectFilter
from .paginator import LargeTablePaginator


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
