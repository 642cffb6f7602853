"""Sent emails in the admin: read-only, one project at a time, with their events.

The changelist stays on the (project, created_at) index: no full COUNT (:mod:`.paginator`), no
facets, and a date drill-down of index probes (:class:`EmailChangeList`). An email's HTML body
is shown in a sandboxed frame (:func:`.email_templates.sandboxed`).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from ..email_models import Email
from ..models import Contact
from ..services import email_history
from .base import ProjectScopedMixin, date_time, name_stats_url, pretty_json
from .email_templates import sandboxed
from .filters import ProjectFilter, date_drilldown, selected_project
from .paginator import LargeTablePaginator

# ---------------------------------------------------------------------------------------------
# Emails


class EmailChangeList(ChangeList):
    """A date drill-down of index probes: the first and last email (``MIN``/``MAX``) and an
    ``EXISTS`` per year, month or day, each a range on the (project, created_at) index, instead
    of Django's ``SELECT DISTINCT`` of truncated dates over every email listed."""

    def date_drilldown(self) -> dict:
        field = self.date_hierarchy
        rows = self.queryset.order_by()

        def has_rows(start: date, end: date) -> bool:
            zone = timezone.get_current_timezone()
            first = datetime.combine(start, datetime.min.time(), tzinfo=zone)
            last = datetime.combine(end, datetime.min.time(), tzinfo=zone)
            return rows.filter(**{f"{field}__gte": first, f"{field}__lt": last}).exists()

        def month_after(d: date) -> date:
            return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)

        def periods(unit: str, *args: int) -> list[date]:
            if unit == "day":
                first = date(*args, 1)
                days = [first + timedelta(days=n) for n in range((month_after(first) - first).days)]
                return [d for d in days if has_rows(d, d + timedelta(days=1))]
            if unit == "month":
                months = [date(args[0], m, 1) for m in range(1, 13)]
                return [m for m in months if has_rows(m, month_after(m))]
            bounds = rows.aggregate(first=Min(field), last=Max(field))
            if bounds["first"] is None:
                return []
            first_year = timezone.localtime(bounds["first"]).year
            last_year = timezone.localtime(bounds["last"]).year
            return [
                date(y, 1, 1)
                for y in range(first_year, last_year + 1)
                if y in (first_year, last_year) or has_rows(date(y, 1, 1), date(y + 1, 1, 1))
            ]

        return date_drilldown(self, periods)

    def _get_deterministic_ordering(self, ordering):
        # Break created_at ties by id in the same direction, as the (…, created_at, id) index.
        ordering = list(ordering)
        if ordering in (["created_at"], ["-created_at"]):
            ordering.append("id" if ordering[0] == "created_at" else "-id")
        return super()._get_deterministic_ordering(ordering)


#: The lines of the changelist's activity column: label, time field, counter field.
ACTIVITY = (
    ("Queued", "created_at", None),
    ("Sent", "sent_at", None),
    ("Delivered", "delivered_at", None),
    ("Opened", "opened_at", "opens"),
    ("Clicked", "clicked_at", "clicks"),
    ("Bounced", "bounced_at", None),
    ("Complained", "complained_at", None),
)


def activity_lines(email: Email):
    """One short line per thing that happened to ``email`` (``Opened 2025-01-31 14:05 ×3``),
    the full time with its zone as the tooltip: the times and counters in one narrow column."""
    lines = []
    for label, time_field, counter_field in ACTIVITY:
        value = getattr(email, time_field)
        if value is None:
            continue
        count = getattr(email, counter_field) if counter_field else 0
        lines.append(
            (
                label,
                value.isoformat(),
                date_time(value),
                timezone.localtime(value).strftime("%Y-%m-%d %H:%M"),
                f" ×{count}" if count else "",
            )
        )
    return format_html_join(
        "",
        '<span class="plunk-activity">{} <time datetime="{}" title="{}">{}</time>{}</span>',
        lines,
    )


@admin.register(Email)
class EmailAdmin(ProjectScopedMixin, admin.ModelAdmin):
    """Emails are records of what was sent: listed, inspected with their events, never edited."""

    list_display = ("recipient", "subject_line", "state", "activity")
    list_filter = (ProjectFilter, "status", "source")
    date_hierarchy = "created_at"
    search_fields = ("to_email",)  # the search itself is get_search_results()
    search_help_text = "A contact’s exact email address, or a provider message id."
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    sortable_by = ()  # newest first, on the index; the date drill-down narrows it
    ordering = ("-created_at", "-id")
    change_list_template = "admin/plunk_events/email/change_list.html"
    fields = (
        "id",
        "project",
        "contact_link",
        "template_link",
        "source",
        "marketing",
        "status",
        "error",
        "to_email",
        "to_name",
        "from_email",
        "from_name",
        "reply_to",
        "subject",
        "body_frame",
        "headers_json",
        "attachment_names",
        "message_id",
        "opens",
        "clicks",
        "created",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "complained",
        "events",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ["plunk_events/admin.css", "plunk_events/email_admin.css"]}

    def get_changelist(self, request, **kwargs):
        return EmailChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")

    def get_search_results(self, request, queryset, search_term):
        """An exact contact email (through the contacts' (project, email) index, then the
        emails' (project, contact, …) one) or an exact provider message id (its index)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        contacts = Contact.objects.filter(email=term.lower())
        project = selected_project(request)
        if project is not None:
            contacts = contacts.filter(project=project)
        contact_ids = list(contacts.values_list("pk", flat=True)[:100])
        return queryset.filter(Q(contact_id__in=contact_ids) | Q(message_id=term)), False

    @admin.display(description="to")
    def recipient(self, obj):
        return obj.to_email

    @admin.display(description="subject")
    def subject_line(self, obj):
        return Truncator(obj.subject).chars(60)

    @admin.display(description="status")
    def state(self, obj):
        return format_html(
            '{}<br><span class="plunk-small plunk-muted">{}</span>',
            obj.get_status_display(),
            obj.get_source_display(),
        )

    @admin.display(description="activity")
    def activity(self, obj):
        return activity_lines(obj)

    @admin.display(description="created")
    def created(self, obj):
        return date_time(obj.created_at)

    @admin.display(description="sent")
    def sent(self, obj):
        return date_time(obj.sent_at)

    @admin.display(description="delivered")
    def delivered(self, obj):
        return date_time(obj.delivered_at)

    @admin.display(description="opened")
    def opened(self, obj):
        return date_time(obj.opened_at)

    @admin.display(description="clicked")
    def clicked(self, obj):
        return date_time(obj.clicked_at)

    @admin.display(description="bounced")
    def bounced(self, obj):
        return date_time(obj.bounced_at)

    @admin.display(description="complained")
    def complained(self, obj):
        return date_time(obj.complained_at)

    @admin.display(description="contact")
    def contact_link(self, obj):
        url = reverse(f"{self.admin_site.name}:plunk_events_contact_change", args=[obj.contact_id])
        return format_html('<a href="{}">{}</a>', url, obj.contact.email)

    @admin.display(description="template")
    def template_link(self, obj):
        if obj.template_id is None:
            return "—"
        url = reverse(
            f"{self.admin_site.name}:plunk_events_template_change", args=[obj.template_id]
        )
        return format_html('<a href="{}">{}</a>', url, obj.template.name)

    @admin.display(description="body")
    def body_frame(self, obj):
        return sandboxed(obj.body, "The email's HTML body")

    @admin.display(description="headers")
    def headers_json(self, obj):
        return pretty_json(obj.headers) if obj.headers else "—"

    @admin.display(description="attachments")
    def attachment_names(self, obj):
        names = [a.get("filename", "?") for a in obj.attachments if isinstance(a, dict)]
        return ", ".join(names) if names else "—"

    @admin.display(description="events")
    def events(self, obj):
        rows = email_history.email_events(obj)
        if not rows:
            return "—"
        site = self.admin_site.name
        return format_html(
            '<table class="plunk-table plunk-email-events"><thead><tr><th scope="col">When</th>'
            '<th scope="col">Event</th><th scope="col">Data</th></tr></thead><tbody>{}</tbody>'
            "</table>",
            format_html_join(
                "",
                '<tr><td><a href="{}">{}</a></td><td><a href="{}">{}</a></td>'
                '<td><code class="plunk-small">{}</code></td></tr>',
                (
                    (
                        reverse(f"{site}:plunk_events_event_change", args=[e.pk]),
                        date_time(e.created_at),
                        name_stats_url(site, e.project_id, e.name),
                        e.name,
                        Truncator(json.dumps(e.data, sort_keys=True, ensure_ascii=False)).chars(
                            160
                        ),
                    )
                    for e in rows
                ),
            ),
        )
