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
from .base import (
    ProjectColumnMixin,
    ProjectScopedMixin,
    admin_url,
    adopt,
    date_time,
    name_stats_url,
)
from .filters import PROJECT_PARAM, ProjectFilter
from .forms import ContactForm
from .paginator import LargeTablePaginator


@admin.register(Contact)
class ContactAdmin(ProjectColumnMixin, ProjectScopedMixin, admin.ModelAdmin):
    """Contacts: read with their latest events, edited (email, subscription, data) and deleted
    through the contact service, never written here."""

    form = ContactForm
    list_display = ("email", "project", "subscribed", "created", "event_count")
    list_filter = (ProjectFilter, "subscribed")
    search_fields = ("email",)  # the search itself is get_search_results()
    search_help_text = "Exact email address."
    list_select_related = ("project",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    sortable_by = ("created", "email", "event_count")
    ordering = ("-created_at", "-id")
    fields = (
        "id",
        "project",
        "email",
        "subscribed",
        "data",
        "event_count",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("id", "project", "event_count", "created_at", "updated_at")
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

    def save_model(self, request, obj, form, change):
        """Through the service: an unsubscribe or resubscribe records its contact event."""
        data = form.cleaned_data.get("data")
        before = set((form.initial.get("data") or {}).keys())
        patch = dict.fromkeys(before - set(data or {})) | (data or {})
        saved = contacts.update_contact(
            obj.project,
            obj.pk,
            email=form.cleaned_data["email"],
            data=patch,
            subscribed=form.cleaned_data["subscribed"],
        )
        adopt(obj, saved)

    @admin.display(description="created at", ordering="created_at")
    def created(self, obj):
        return date_time(obj.created_at)

    @admin.display(description="events", ordering="event_count")
    def event_count(self, obj):
        return f"{obj.event_count:,}"

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
