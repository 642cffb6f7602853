"""Workflows: settings through the workflow service; the graph drawn top to bottom, each
step's settings edited on its own form (:mod:`.step_forms`, saved by the graph service)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ..models import Workflow, WorkflowStep, WorkflowTransition
from ..services import workflow_graph as graph_service
from ..services import workflows
from ..services.errors import PlunkError, ValidationFailed
from ..services.workflow_graph import ActiveExecutions
from ..workflow_models import ACTIVE_STATUSES
from .base import ProjectColumnMixin, adopt, name_stats_url
from .forms import WorkflowForm
from .step_forms import step_form_class
from .workflow_pages import workflow_graph


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
class WorkflowAdmin(ProjectColumnMixin, admin.ModelAdmin):
    form = WorkflowForm
    inlines = []  # the graph is drawn by graph(); steps are edited by step_view()

    class Media:
        css = {"all": ["plunk_events/admin.css"]}

    list_display = ("name", "project", "trigger", "enabled", "allow_reentry", "created_at")
    list_filter = ("project", "enabled", "trigger_type")
    search_fields = ("name",)
    list_select_related = ("project",)
    readonly_fields = ("trigger_statistics", "graph", "runs", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        fields = ["project", "name", "description", "event_name", "enabled", "allow_reentry"]
        if obj is not None:
            fields[4:4] = ["trigger_statistics"]
            fields += ["graph", "runs", "created_at", "updated_at"]
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

    @admin.display(description="steps")
    def graph(self, obj):
        return workflow_graph(obj, getattr(obj, "_plunk_step_url", None))

    def get_object(self, request, object_id, from_field=None):
        """The workflow, remembering whether this request may change its steps (the graph's
        "Change settings" links are drawn for users who may)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and self.has_change_permission(request, obj):
            obj._plunk_step_url = lambda step: self._step_url(obj, step)
        return obj

    def _step_url(self, workflow, step) -> str:
        return reverse(
            f"{self.admin_site.name}:plunk_events_workflow_step",
            args=[quote(workflow.pk), step.pk],
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/steps/<uuid:step_id>/",
                self.admin_site.admin_view(self.step_view),
                name="plunk_events_workflow_step",
            ),
            *super().get_urls(),
        ]

    def step_view(self, request, object_id, step_id):
        """One step's settings as a form, saved through :func:`workflow_graph.update_step`
        (the API's step route), whose field errors are shown on the form."""
        workflow = super().get_object(request, unquote(object_id))
        if workflow is None:
            raise Http404("No such workflow")
        if not self.has_change_permission(request, workflow):
            raise PermissionDenied
        step = WorkflowStep.objects.filter(workflow=workflow, pk=step_id).first()
        if step is None or step.type == WorkflowStep.Type.TRIGGER:
            # The trigger's settings are the workflow's trigger event name (its own page).
            raise Http404("No such step")
        form_class = step_form_class(step)
        form = form_class(request.POST if request.method == "POST" else None, step=step)
        if request.method == "POST" and form.is_valid():
            try:
                saved = graph_service.update_step(
                    workflow.project,
                    workflow.pk,
                    step.pk,
                    name=form.cleaned_data["name"],
                    config=form.to_config(),
                )
            except ValidationFailed as exc:
                form.add_service_errors(exc.errors)
            except PlunkError as exc:  # ACTIVE_EXECUTIONS, a name being deleted, …
                form.add_error(None, exc.message)
            else:
                self.log_change(request, workflow, f"Changed the settings of step “{saved.name}”.")
                self.message_user(
                    request, f"The step “{saved.name}” was changed.", messages.SUCCESS
                )
                url = reverse(
                    f"{self.admin_site.name}:plunk_events_workflow_change",
                    args=[quote(workflow.pk)],
                )
                return HttpResponseRedirect(f"{url}#step-{saved.pk}")
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": f"Step “{step.name}”",
            "subtitle": f"{step.get_type_display()} · {workflow.name}",
            "opts": self.opts,
            "original": workflow,
            "step": step,
            "form": form,
            "adminform": helpers.AdminForm(form, form.fieldsets(), {}, model_admin=self),
            "errors": helpers.AdminErrorList(form, []),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/plunk_events/workflow/step_form.html", context)

    @admin.display(description="runs")
    def runs(self, obj):
        url = reverse(f"{self.admin_site.name}:plunk_events_workflowexecution_changelist")
        query = f"?project={obj.project_id}&workflow__id__exact={obj.pk}"
        active = dict(
            obj.executions.filter(status__in=ACTIVE_STATUSES)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        return format_html(
            '<a href="{}">All runs</a> · <a href="{}">{} running</a> · <a href="{}">{} waiting</a>',
            url + query,
            url + query + "&status__exact=RUNNING",
            f"{active.get('RUNNING', 0):,}",
            url + query + "&status__exact=WAITING",
            f"{active.get('WAITING', 0):,}",
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
