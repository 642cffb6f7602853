"""Admin actions with a confirmation page: guarded delete by event name, key regeneration.

The delete goes through exactly the guard of ``DELETE /events/<name>``: the confirmation page asks
:func:`deletion.delete_refusal` why a name cannot go, and the confirmed POST calls
:func:`deletion.delete_events_by_name`, which checks again under the project lock and raises
``PlunkError`` for a name that became referenced in between.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import Truncator

from ..constants import is_system_event
from ..models import Event, Project
from ..services import deletion, rollups
from ..services.errors import PlunkError
from ..services.projects import regenerate_keys
from .filters import NAME_PARAM, selected_project

DELETE_ACTION = "delete_events_with_selected_names"


@dataclass
class Link:
    label: str
    url: str


@dataclass
class NamePlan:
    """What confirming would do to one event name of one project."""

    project: Project
    name: str
    count: int
    refusal: str | None = None
    segments: list[Link] = field(default_factory=list)
    workflows: list[Link] = field(default_factory=list)

    @property
    def deletable(self) -> bool:
        return self.refusal is None

    @property
    def is_system(self) -> bool:
        return is_system_event(self.name)


def counted(n: int, word: str) -> str:
    """``counted(1, "segment")`` is "1 segment", ``counted(2, "segment")`` "2 segments"."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def plain_refusal(name: str, usage: dict, fallback: str) -> str:
    """The delete guard's refusal in words a marketer reads (the API keeps Plunk's message)."""
    if is_system_event(name):
        return "Plunk records this event itself; it cannot be deleted."
    segments, workflows = usage.get("usedInSegments", []), usage.get("usedInWorkflows", [])
    if segments or workflows:
        users = [
            counted(len(x), w) for x, w in ((segments, "segment"), (workflows, "workflow")) if x
        ]
        them = "it" if len(segments) + len(workflows) == 1 else "them"
        return f"Used by {' and '.join(users)}: edit {them} to stop using this event first."
    return fallback


def plan_deletions(
    pairs: Iterable[tuple[Project, str]], *, site_name: str = admin.site.name
) -> list[NamePlan]:
    """The count that would be deleted, or the guard's refusal, for each (project, name).

    ``site_name`` is the admin site whose segment and workflow pages the refusals link to.
    """
    plans = []
    counts: dict = {}
    for project, name in pairs:
        if project.pk not in counts:
            counts[project.pk] = rollups.event_counts(project)
        plan = NamePlan(project, name, counts[project.pk].get(name, 0))
        refusal = deletion.delete_refusal(project, name)
        if refusal is not None:
            usage = refusal.details or {}
            plan.refusal = plain_refusal(name, usage, refusal.message)
            plan.segments = [
                Link(s["name"], reverse(f"{site_name}:plunk_events_segment_change", args=[s["id"]]))
                for s in usage.get("usedInSegments", [])
            ]
            plan.workflows = [
                Link(
                    w["name"], reverse(f"{site_name}:plunk_events_workflow_change", args=[w["id"]])
                )
                for w in usage.get("usedInWorkflows", [])
            ]
        plans.append(plan)
    return sorted(plans, key=lambda p: (p.project.name, p.name))


def log_name_deletion(request: HttpRequest, plan: NamePlan, deleted: int) -> LogEntry:
    """One admin history entry per deleted name; ``object_id`` holds the event name."""
    return LogEntry.objects.create(
        user_id=request.user.pk,
        content_type_id=ContentType.objects.get_for_model(Event).pk,
        object_id=plan.name,
        object_repr=Truncator(f"{plan.name} ({deleted} events, {plan.project})").chars(200),
        action_flag=DELETION,
        change_message=(
            f'Deleted all {deleted} events named "{plan.name}" in project "{plan.project}" '
            "(guarded delete by event name)."
        ),
    )


def execute_deletions(modeladmin, request: HttpRequest, plans: list[NamePlan]) -> int:
    """Delete every name that passed the guard; report each outcome with admin messages."""
    deleted_names = 0
    for plan in plans:
        if not plan.deletable:
            modeladmin.message_user(
                request, f"“{plan.name}” was not deleted: {plan.refusal}", messages.WARNING
            )
            continue
        try:
            deleted = deletion.delete_events_by_name(plan.project, plan.name)
        except PlunkError as exc:
            modeladmin.message_user(
                request,
                f"“{plan.name}” was not deleted: "
                f"{plain_refusal(plan.name, exc.details or {}, exc.message)}",
                messages.ERROR,
            )
            continue
        log_name_deletion(request, plan, deleted)
        deleted_names += 1
        modeladmin.message_user(
            request,
            f"Deleted {deleted:,} “{plan.name}” event{'s' if deleted != 1 else ''}"
            f" in project “{plan.project}”.",
            messages.SUCCESS,
        )
    return deleted_names


def render_confirmation(
    modeladmin,
    request: HttpRequest,
    plans: list[NamePlan],
    *,
    hidden: list[tuple[str, str]],
    cancel_url: str,
    form_action: str = "",
) -> TemplateResponse:
    opts = modeladmin.model._meta
    deletable = [p for p in plans if p.deletable]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Delete events by name" if deletable else "Cannot delete these event names",
        "subtitle": None,
        "opts": opts,
        "plans": plans,
        "deletable": deletable,
        "deletable_count": sum(p.count for p in deletable),
        "hidden": hidden,
        "form_action": form_action,
        "cancel_url": cancel_url,
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(
        request, "admin/plunk_events/event/delete_by_name_confirmation.html", context
    )


def _names_in_selection(request: HttpRequest, queryset: QuerySet) -> list[tuple[Project, str]]:
    """(project, name) pairs of the selected events.

    A page selection is at most a page of ids. "Select all" covers the whole filtered list: its
    candidate names come from the rollup catalogue of the project (O(names)), each confirmed
    with one indexed ``EXISTS`` on the filtered queryset, never a ``DISTINCT`` over the table.
    """
    if request.POST.get("select_across") != "1":
        rows = queryset.order_by().values_list("project_id", "name").distinct()
        projects = Project.objects.in_bulk({pid for pid, _ in rows})
        return [(projects[pid], name) for pid, name in rows]
    chosen = selected_project(request)
    projects = [chosen] if chosen else list(Project.objects.all())
    pairs = []
    for project in projects:
        candidates = list(rollups.event_counts(project))
        if request.GET.get(NAME_PARAM):
            candidates = [n for n in candidates if n == request.GET[NAME_PARAM]]
        for name in sorted(candidates):
            if queryset.filter(project=project, name=name).exists():
                pairs.append((project, name))
    return pairs


def _after_deletion(request: HttpRequest, plans: list[NamePlan]) -> HttpResponseRedirect | None:
    """A list filtered to a name that is now deleted would be empty: drop that filter."""
    name = request.GET.get(NAME_PARAM)
    if name and any(p.name == name and p.deletable for p in plans):
        query = request.GET.copy()
        del query[NAME_PARAM]
        return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
    return None


@admin.action(permissions=["delete"], description="Delete all events with the selected names")
def delete_events_with_selected_names(modeladmin, request, queryset):
    """Like ``delete_selected``: a confirmation page first, the deletion on ``post=yes``."""
    plans = plan_deletions(
        _names_in_selection(request, queryset), site_name=modeladmin.admin_site.name
    )
    if request.POST.get("post") == "yes":
        execute_deletions(modeladmin, request, plans)
        return _after_deletion(request, plans)
    hidden = [(helpers.ACTION_CHECKBOX_NAME, v) for v in request.POST.getlist("_selected_action")]
    hidden += [("action", DELETE_ACTION), ("select_across", request.POST.get("select_across", "0"))]
    return render_confirmation(
        modeladmin, request, plans, hidden=hidden, cancel_url=request.get_full_path()
    )


# ---------------------------------------------------------------------------------------------
# Projects


def render_keys(modeladmin, request: HttpRequest, projects: list[Project], *, title: str):
    """Show the full keys once, right after they were made; everywhere else they are masked."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": modeladmin.model._meta,
        "projects": projects,
        "changelist_url": reverse(f"{modeladmin.admin_site.name}:plunk_events_project_changelist"),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/plunk_events/project/keys.html", context)


@admin.action(permissions=["change"], description="Regenerate API keys of the selected projects")
def regenerate_project_keys(modeladmin, request, queryset):
    projects = list(queryset.order_by("name"))
    if request.POST.get("post") == "yes":
        for project in projects:
            regenerate_keys(project)
            modeladmin.log_change(request, project, "Regenerated the API keys.")
        modeladmin.message_user(
            request,
            f"Regenerated the keys of {len(projects)} project{'s' if len(projects) != 1 else ''}."
            " The old keys stop working at once here, and within API_KEY_CACHE_SECONDS in the"
            " site's other server processes.",
            messages.SUCCESS,
        )
        return render_keys(modeladmin, request, projects, title="New API keys")
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Regenerate API keys",
        "subtitle": None,
        "opts": modeladmin.model._meta,
        "projects": projects,
        "hidden": [(helpers.ACTION_CHECKBOX_NAME, str(p.pk)) for p in projects],
        "action": "regenerate_project_keys",
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(
        request, "admin/plunk_events/project/regenerate_keys_confirmation.html", context
    )
