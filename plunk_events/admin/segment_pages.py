"""A segment's page beyond its settings: its members (paginated, linked to their contacts), the
entry and exit history of a tracked one, and adding or removing members of a STATIC one by
email, all through :mod:`services.segments`."""

from __future__ import annotations

import json
import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.urls import reverse

from ..constants import SEGMENT_EVENT_PREFIX
from ..models import Event, Project, Segment
from ..services import automation
from ..services import segments as segment_service
from ..services.conditions import validate_condition
from ..services.errors import PlunkError
from .base import date_time

MEMBERS_PER_PAGE = 25
HISTORY = 20


def member_context(site_name: str, segment: Segment, request) -> dict:
    """Context of the members, history and STATIC membership form of the segment's page."""
    try:
        number = max(1, int(request.GET.get("members_page", 1)))
    except ValueError:
        number = 1
    page = segment_service.members(segment, number, MEMBERS_PER_PAGE)
    contact_url = reverse(f"{site_name}:plunk_events_contact_change", args=["00000000"])
    context = {
        "members": [
            {"email": c.email, "url": contact_url.replace("00000000", str(c.pk))}
            for c in page.contacts
        ],
        "members_total": page.total,
        "members_page": page.page,
        "members_pages": page.total_pages,
        "is_static": segment.type == Segment.Type.STATIC,
        "members_url": reverse(f"{site_name}:plunk_events_segment_members", args=[segment.pk]),
    }
    if segment.track_membership:
        names = [f"{SEGMENT_EVENT_PREFIX}{segment.slug}{s}" for s in (".entry", ".exit")]
        rows = (
            Event.objects.filter(project_id=segment.project_id, name__in=names)
            .select_related("contact")
            .order_by("-created_at", "-id")[:HISTORY]
        )
        context["history"] = [
            {
                "when": date_time(e.created_at),
                "what": "entered" if e.name.endswith(".entry") else "left",
                "email": e.contact.email if e.contact_id else "—",
                "url": contact_url.replace("00000000", str(e.contact_id)) if e.contact_id else "",
            }
            for e in rows
        ]
    return context


def change_members(model_admin, request, object_id):
    """POST ``emails`` (one per line or comma-separated) and ``op=add|remove``: the service's
    add or remove on a STATIC segment, its outcome as a message, back to the segment's page."""
    segment = model_admin.get_object(request, object_id)
    if segment is None:
        raise Http404("No such segment")
    if request.method != "POST" or not model_admin.has_change_permission(request, segment):
        raise PermissionDenied
    raw = request.POST.get("emails", "")
    emails = [e for e in (part.strip() for part in raw.replace(",", "\n").splitlines()) if e]
    back = reverse(f"{model_admin.admin_site.name}:plunk_events_segment_change", args=[segment.pk])
    if not emails:
        model_admin.message_user(request, "Enter at least one email address.", messages.WARNING)
        return HttpResponseRedirect(back)
    try:
        if request.POST.get("op") == "remove":
            result = segment_service.remove_members(segment, emails)
            text = f"Removed {result['removed']:,} of {len(emails):,}."
        else:
            result = segment_service.add_members(segment, emails)
            text = f"Added {result['added']:,} of {len(emails):,}."
            if result["notFound"]:
                text += f" No contact with: {', '.join(result['notFound'][:10])}."
    except PlunkError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(back)
    model_admin.log_change(request, segment, text)
    model_admin.message_user(request, text, messages.SUCCESS)
    return HttpResponseRedirect(back)


def preview(model_admin, request):
    """POST ``condition`` (JSON), ``project`` and optionally ``segment``: the validation
    service's field errors, or how many contacts the condition matches now (the segment
    engine's count), as JSON for the condition builder."""
    if request.method != "POST" or not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        condition = json.loads(request.POST.get("condition") or "null")
    except ValueError:
        return JsonResponse(
            {"errors": [{"field": "condition", "message": "Invalid JSON", "code": "invalid_json"}]}
        )
    errors = validate_condition(condition)
    if errors:
        return JsonResponse({"errors": errors})
    project = Project.objects.filter(pk=_uuid(request.POST.get("project"))).first()
    if project is None:
        return JsonResponse({"message": "Choose a project to count its contacts."})
    segment_id = _uuid(request.POST.get("segment"))
    try:
        count = automation.live_member_count(project, condition, segment_id=segment_id)
    except PlunkError as exc:
        return JsonResponse({"errors": [{"field": "condition", "message": exc.message}]})
    return JsonResponse({"count": count})


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
