"""A workflow as a marketer reads it: the steps top to bottom with their branches labelled and
their settings in words ("3 days", not 259200); its executions, each with its step timeline and
a cancel action through :mod:`services.executions`.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ..email_models import Template
from ..models import WorkflowStep
from ..services import executions as execution_service
from ..services.errors import PlunkError
from ..workflow_models import ACTIVE_STATUSES, WorkflowExecution, WorkflowTransition
from .base import ProjectScopedMixin, date_time
from .filters import ProjectFilter
from .paginator import LargeTablePaginator
from .step_forms import OPERATOR_LABELS

UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def duration(seconds: int | float | None) -> str:
    """``259200`` → "3 days", ``5400`` → "1 hour 30 minutes"."""
    if seconds is None:
        return "—"
    left, parts = int(seconds), []
    for name, size in UNITS:
        n, left = divmod(left, size)
        if n:
            parts.append(f"{n:,} {name}{'' if n == 1 else 's'}")
    return " ".join(parts[:2]) or "0 seconds"


def step_settings(step: WorkflowStep, templates: dict | None = None) -> list[tuple[str, str]]:
    """A step's config as (label, value) pairs in words; ``templates`` maps the project's
    template ids (as text) to their names."""
    config = step.config or {}
    kind = step.type
    if kind == WorkflowStep.Type.SEND_EMAIL and isinstance(config, dict):
        template_id = config.get("templateId")
        recipient = config.get("recipient") if isinstance(config.get("recipient"), dict) else {}
        name = (templates or {}).get(str(template_id)) if template_id else None
        return [
            (
                "Email template",
                name or ("A template that no longer exists" if template_id else "None chosen"),
            ),
            (
                "Send to",
                str(recipient.get("customEmail"))
                if recipient.get("type") == "CUSTOM"
                else "The contact of the run",
            ),
        ]
    if (
        kind == WorkflowStep.Type.CONDITION
        and isinstance(config, dict)
        and config.get("mode") is None
        and config.get("operator") in OPERATOR_LABELS
    ):
        words = f"{config.get('field')} {OPERATOR_LABELS[config['operator']]}"
        if "value" in config:
            words += f" {json.dumps(config['value'], ensure_ascii=False)}"
        return [("If", words)]
    if kind == WorkflowStep.Type.DELAY:
        amount, unit = config.get("amount"), config.get("unit", "")
        if isinstance(amount, int | float):
            unit = unit[:-1] if amount == 1 and unit.endswith("s") else unit
            return [("Wait", f"{amount:g} {unit}")]
    if kind == WorkflowStep.Type.WAIT_FOR_EVENT:
        out = [("Wait for the event", str(config.get("eventName", "—")))]
        if config.get("timeout") is not None:
            out.append(("Give up after", duration(config["timeout"])))
        return out
    out = []
    for key, value in config.items():
        label = key[:1].upper() + "".join(f" {c.lower()}" if c.isupper() else c for c in key[1:])
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        out.append((label, text))
    return out


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def edge_label(step: WorkflowStep, edge: WorkflowTransition) -> str:
    if edge.wait_outcome == WorkflowTransition.WaitOutcome.EVENT:
        return "when the event arrives"
    if edge.wait_outcome == WorkflowTransition.WaitOutcome.TIMEOUT:
        return "when the wait times out"
    branch = (edge.condition or {}).get("branch")
    if branch is not None:
        return {"yes": "if yes", "no": "if no", "default": "otherwise"}.get(branch, f"if {branch}")
    return ""


def ordered_steps(steps: list[WorkflowStep], edges: list[WorkflowTransition]):
    """Steps breadth-first from the trigger (then any unreachable ones), for a top-down read."""
    by_id = {s.pk: s for s in steps}
    out_edges: dict = {}
    for e in sorted(edges, key=lambda e: (e.priority, e.created_at)):
        out_edges.setdefault(e.from_step_id, []).append(e)
    starts = [s for s in steps if s.type == WorkflowStep.Type.TRIGGER] or steps[:1]
    seen, order, queue = set(), [], deque(s.pk for s in starts)
    while queue:
        pk = queue.popleft()
        if pk in seen or pk not in by_id:
            continue
        seen.add(pk)
        order.append(by_id[pk])
        queue.extend(e.to_step_id for e in out_edges.get(pk, []))
    order += [s for s in steps if s.pk not in seen]
    return order, out_edges


def workflow_graph(workflow, step_url: Callable[[WorkflowStep], str] | None = None) -> SafeString:
    """The graph as a vertical list of step cards, each with its labelled outgoing arrows;
    with ``step_url``, each step but the trigger links to its settings form."""
    steps = list(workflow.steps.order_by("order", "id"))
    edges = list(WorkflowTransition.objects.filter(workflow=workflow).order_by("priority"))
    template_ids = {
        _uuid_or_none(s.config.get("templateId"))
        for s in steps
        if s.type == WorkflowStep.Type.SEND_EMAIL and isinstance(s.config, dict)
    } - {None}
    templates = {}
    if template_ids:
        rows = Template.objects.filter(project_id=workflow.project_id, pk__in=template_ids)
        templates = {str(pk): name for pk, name in rows.values_list("pk", "name")}
    if not steps:
        return mark_safe('<p class="plunk-note">No steps yet.</p>')
    order, out_edges = ordered_steps(steps, edges)
    names = {s.pk: s.name or s.get_type_display() for s in steps}
    cards = []
    for number, step in enumerate(order, 1):
        settings = format_html_join(
            "",
            "<dt>{}</dt><dd>{}</dd>",
            ((label, value) for label, value in step_settings(step, templates)),
        )
        arrows = format_html_join(
            "",
            '<li>↓ {}<a href="#step-{}">{}</a></li>',
            (
                (
                    format_html("<em>{}</em> → ", edge_label(step, e))
                    if edge_label(step, e)
                    else "",
                    e.to_step_id,
                    names.get(e.to_step_id, "?"),
                )
                for e in out_edges.get(step.pk, [])
            ),
        )
        edit = ""
        if step_url is not None and step.type != WorkflowStep.Type.TRIGGER:
            edit = format_html(
                ' <a href="{}" class="plunk-step-edit" aria-label="Change the settings of {}">'
                "Change settings</a>",
                step_url(step),
                names[step.pk],
            )
        cards.append(
            format_html(
                '<li class="plunk-step" id="step-{}"><div class="plunk-step-head">'
                '<span class="plunk-step-number">{}</span> <strong>{}</strong> '
                '<span class="plunk-tag">{}</span>{}</div>{}{}</li>',
                step.pk,
                number,
                names[step.pk],
                step.get_type_display(),
                edit,
                format_html('<dl class="plunk-step-settings">{}</dl>', settings)
                if settings
                else "",
                format_html('<ul class="plunk-step-next">{}</ul>', arrows) if arrows else "",
            )
        )
    return format_html('<ol class="plunk-graph">{}</ol>', mark_safe("".join(cards)))  # noqa: S308


@admin.action(permissions=["change"], description="Cancel the selected running or waiting runs")
def cancel_executions(modeladmin, request, queryset):
    cancelled = 0
    for run in queryset.filter(status__in=ACTIVE_STATUSES).select_related("project"):
        execution_service.cancel_execution(run.project, run.workflow_id, run.pk)
        cancelled += 1
    modeladmin.message_user(
        request, f"Cancelled {cancelled:,} run{'' if cancelled == 1 else 's'}.", messages.SUCCESS
    )


@admin.register(WorkflowExecution)
class WorkflowExecutionAdmin(ProjectScopedMixin, admin.ModelAdmin):
    """Runs of workflows: read, filtered by status, cancelled through the execution service."""

    list_display = ("contact_email", "workflow", "status", "current", "started", "finished")
    list_filter = (ProjectFilter, "status", "workflow")
    list_select_related = ("contact", "workflow", "current_step")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    sortable_by = ()
    ordering = ("-started_at", "-id")
    actions = [cancel_executions]
    fields = (
        "workflow",
        "contact_email",
        "status",
        "current",
        "exit_reason",
        "started",
        "finished",
    )
    readonly_fields = fields
    change_form_template = "admin/plunk_events/workflowexecution/change_form.html"

    class Media:
        css = {"all": ["plunk_events/admin.css"]}

    def has_add_permission(self, request):
        return False

    def delete_view(self, request, object_id, extra_context=None):
        """Runs go with their workflow (whose delete asks the model permission of its runs,
        hence the default ``has_delete_permission``), never one by one."""
        raise PermissionDenied

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="contact")
    def contact_email(self, obj):
        return obj.contact.email

    @admin.display(description="current step")
    def current(self, obj):
        step = obj.current_step
        return (step.name or step.get_type_display()) if step else "—"

    @admin.display(description="started")
    def started(self, obj):
        return date_time(obj.started_at)

    @admin.display(description="finished")
    def finished(self, obj):
        return date_time(obj.completed_at)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="plunk_events_workflowexecution_cancel",
            ),
            *super().get_urls(),
        ]

    def cancel_view(self, request, object_id):
        """POST only: cancel one run (the execution page's button)."""
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404("No such run")
        if request.method != "POST" or not self.has_change_permission(request, run):
            raise PermissionDenied
        try:
            execution_service.cancel_execution(run.project, run.workflow_id, run.pk)
        except PlunkError as exc:
            self.message_user(request, exc.message, messages.WARNING)
        else:
            self.message_user(request, "The run was cancelled.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:plunk_events_workflowexecution_change", args=[run.pk])
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = {
            **(extra_context or {}),
            # Nothing on the page is edited: its one write is the cancel button.
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        if run is not None:
            detail = execution_service.get_execution(run.project, run.workflow_id, run.pk)
            extra["timeline"] = [
                {
                    "step": s.step.name or s.step.get_type_display(),
                    "type": s.step.get_type_display(),
                    "status": s.status,
                    "output": json.dumps(s.output, ensure_ascii=False) if s.output else "",
                    "error": s.error or "",
                    "started": date_time(getattr(s, "started_at", None) or s.created_at),
                    "finished": date_time(getattr(s, "completed_at", None)),
                }
                for s in detail.steps_run
            ]
            extra["title"] = f"Run of “{run.workflow.name}”"
            extra["subtitle"] = f"{run.contact.email} · {run.get_status_display()}"
            extra["can_cancel"] = run.is_active and self.has_change_permission(request, run)
            extra["cancel_url"] = reverse(
                f"{self.admin_site.name}:plunk_events_workflowexecution_cancel", args=[run.pk]
            )
        return super().change_view(request, object_id, form_url, extra)
