"""``/workflows/<id>/executions``: start a workflow for a contact, list and read its runs,
cancel one or all of them (:mod:`plunk_events.services.executions`).

Secret key only, errors in the envelope; ids of another project or workflow, or not UUIDs, are
404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from ..models import WorkflowExecution, WorkflowStep, WorkflowStepExecution
from ..services import executions, workflows
from . import schema
from . import serializers as s
from .mixins import PlunkAPIMixin
from .params import lenient_int
from .resources import LENIENT_NUMBER, id_parameter, json_body


class StartExecutionRequest(serializers.Serializer):
    contactId = serializers.UUIDField(help_text="A contact of the project.")
    context = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="The run's context (what `event.*` and `workflow.*` read), as an event's "
        "data would be.",
    )


class ContactRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.CharField()


class StepRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    type = s.NamedChoiceField(choices=WorkflowStep.Type.choices, enum_name="WorkflowStepType")


class ExecutionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    workflowId = serializers.UUIDField(source="workflow_id")
    contactId = serializers.UUIDField(source="contact_id")
    status = s.NamedChoiceField(
        choices=WorkflowExecution.Status.choices, enum_name="WorkflowExecutionStatus"
    )
    currentStepId = serializers.UUIDField(source="current_step_id", allow_null=True)
    exitReason = serializers.CharField(source="exit_reason", allow_null=True)
    context = serializers.JSONField(allow_null=True)
    sourceEventId = serializers.UUIDField(
        source="source_event_id",
        allow_null=True,
        help_text="Extension: the event that started the run (null when started by hand).",
    )
    startedAt = s.TimestampField(source="started_at")
    completedAt = s.TimestampField(source="completed_at", allow_null=True)
    updatedAt = s.TimestampField(source="updated_at")
    contact = ContactRefSerializer()
    currentStep = StepRefSerializer(source="current_step", allow_null=True)


class StepExecutionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    stepId = serializers.UUIDField(source="step_id")
    status = s.NamedChoiceField(
        choices=WorkflowStepExecution.Status.choices, enum_name="WorkflowStepExecutionStatus"
    )
    output = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    executeAfter = s.TimestampField(
        source="execute_after",
        allow_null=True,
        help_text="When the step is due: a DELAY's end, a WAIT_FOR_EVENT's timeout.",
    )
    startedAt = s.TimestampField(source="started_at", allow_null=True)
    completedAt = s.TimestampField(source="completed_at", allow_null=True)
    createdAt = s.TimestampField(source="created_at")
    step = StepRefSerializer()


class ExecutionDetailSerializer(ExecutionSerializer):
    stepExecutions = StepExecutionSerializer(
        source="steps_run", many=True, help_text="Oldest first."
    )


class ExecutionListResponse(serializers.Serializer):
    executions = ExecutionSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
    totalPages = serializers.IntegerField()


class CancelAllResponse(serializers.Serializer):
    cancelled = serializers.IntegerField(help_text="RUNNING and WAITING executions cancelled.")


def execution_id_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "executionId", str, OpenApiParameter.PATH, description="The execution's UUID."
    )


ERRORS_404 = {
    404: schema.error_doc("No such workflow or execution in this project (or not a UUID)")
}


class WorkflowExecutionViewSet(PlunkAPIMixin, ViewSet):
    """Runs of a workflow: one contact each, from its TRIGGER step to an end state."""

    @extend_schema(
        operation_id="startWorkflowExecution",
        parameters=[id_parameter("workflow")],
        request=StartExecutionRequest,
        responses={
            201: ExecutionSerializer,
            **schema.ERRORS_401_SECRET,
            404: schema.error_doc("No such workflow or contact in this project"),
            409: schema.error_doc(
                "The workflow is disabled (WORKFLOW_DISABLED), or the contact may not enter it "
                "now (ALREADY_ENROLLED: a RUNNING or WAITING execution, or any execution when "
                "re-entry is off)"
            ),
            **schema.ERRORS_BODY_422,
        },
        tags=["Workflows"],
    )
    def start(self, request, pk: str):
        workflows.get_workflow_row(self.project, pk)
        body = StartExecutionRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        values = body.validated_data
        execution = executions.start_execution(
            self.project, pk, values["contactId"], context=values.get("context")
        )
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="listWorkflowExecutions",
        parameters=[
            id_parameter("workflow"),
            OpenApiParameter("page", int, description=f"1-based; default 1; {LENIENT_NUMBER}."),
            OpenApiParameter(
                "pageSize", int, description=f"Default 20, at most 100; {LENIENT_NUMBER}."
            ),
            OpenApiParameter(
                "status",
                str,
                enum=WorkflowExecution.Status.values,
                description="Only executions in this status; empty means all, any other value "
                "is a 422.",
            ),
        ],
        responses={
            200: ExecutionListResponse,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            422: schema.error_doc("Bad `status`, or a query value the database cannot store"),
        },
        tags=["Workflows"],
    )
    def list_executions(self, request, pk: str):
        params = request.query_params
        page = executions.list_executions(
            self.project,
            pk,
            page=lenient_int(params.get("page"), 1, 10**9),
            page_size=lenient_int(params.get("pageSize"), 20, executions.MAX_PAGE_SIZE),
            status=params.get("status"),
        )
        return Response(
            {
                "executions": ExecutionSerializer(page.executions, many=True).data,
                "total": page.total,
                "page": page.page,
                "pageSize": page.page_size,
                "totalPages": page.total_pages,
            }
        )

    @extend_schema(
        operation_id="getWorkflowExecution",
        parameters=[id_parameter("workflow"), execution_id_parameter()],
        responses={200: ExecutionDetailSerializer, **schema.ERRORS_401_SECRET, **ERRORS_404},
        tags=["Workflows"],
    )
    def retrieve(self, request, pk: str, executionId: str):
        execution = executions.get_execution(self.project, pk, executionId)
        return Response(ExecutionDetailSerializer(execution).data)

    @extend_schema(
        operation_id="cancelWorkflowExecution",
        description="A RUNNING or WAITING execution becomes CANCELLED (`Cancelled by user`); "
        "a CANCELLED one is answered as it is.",
        parameters=[id_parameter("workflow"), execution_id_parameter()],
        responses={
            200: ExecutionDetailSerializer,
            **schema.ERRORS_401_SECRET,
            **ERRORS_404,
            409: schema.error_doc(
                "The execution is COMPLETED, EXITED or FAILED already (EXECUTION_FINISHED)"
            ),
        },
        tags=["Workflows"],
    )
    def cancel(self, request, pk: str, executionId: str):
        execution = executions.cancel_execution(self.project, pk, executionId)
        return Response(ExecutionDetailSerializer(execution).data)

    @extend_schema(
        operation_id="cancelAllWorkflowExecutions",
        parameters=[id_parameter("workflow")],
        request=None,
        responses={200: CancelAllResponse, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Workflows"],
    )
    def cancel_all(self, request, pk: str):
        return Response({"cancelled": executions.cancel_all(self.project, pk)})
