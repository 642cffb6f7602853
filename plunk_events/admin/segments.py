"""Segments: written through the automation service, with the event names they reference."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, reverse

from ..models import Segment
from ..services import automation
from ..services.references import condition_event_names
from .base import ProjectColumnMixin, adopt, event_name_links
from .forms import SegmentForm
from .segment_pages import change_members, member_context, preview


@admin.register(Segment)
class SegmentAdmin(ProjectColumnMixin, admin.ModelAdmin):
    form = SegmentForm
    list_display = ("name", "project", "type", "tracked", "members", "event_names")
    list_filter = ("project", "type", "track_membership")
    search_fields = ("name",)
    readonly_fields = ("slug", "member_count", "event_names", "created_at", "updated_at")
    list_select_related = ("project",)
    change_form_template = "admin/plunk_events/segment/change_form.html"

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

    @admin.display(description="tracked", boolean=True, ordering="track_membership")
    def tracked(self, obj):
        return obj.track_membership

    @admin.display(description="members", ordering="member_count")
    def members(self, obj):
        return f"{obj.member_count:,}"

    @admin.display(description="events used")
    def event_names(self, obj):
        return event_name_links(
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

    class Media:
        css = {"all": ["plunk_events/admin.css"]}
        js = ["plunk_events/condition_builder.js"]

    def get_urls(self):
        return [
            path(
                "preview/",
                self.admin_site.admin_view(lambda r: preview(self, r)),
                name="plunk_events_segment_preview",
            ),
            path(
                "<path:object_id>/members/",
                self.admin_site.admin_view(lambda r, object_id: change_members(self, r, object_id)),
                name="plunk_events_segment_members",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """The condition builder's settings, on this form's own copy of the widget."""
        form = context["adminform"].form
        if "condition" in form.fields:
            form.fields["condition"].widget.attrs.update(
                {
                    "data-preview-url": reverse(
                        f"{self.admin_site.name}:plunk_events_segment_preview"
                    ),
                    "data-project": str(obj.project_id) if obj else "",
                    "data-segment": str(obj.pk) if obj else "",
                }
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        segment = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if segment is not None:
            extra.update(member_context(self.admin_site.name, segment, request))
        return super().change_view(request, object_id, form_url, extra)

    def delete_model(self, request, obj):
        automation.delete_segment(obj.project, obj.pk)

    def delete_queryset(self, request, queryset):
        for segment in queryset.select_related("project"):
            automation.delete_segment(segment.project, segment.pk)
