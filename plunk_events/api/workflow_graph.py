"""``/workflows/<id>/duplicate``, ``/steps`` and ``/transitions``: editing a workflow's graph.

Secret key only, errors in the envelope; ids of another project or workflow, or not UUIDs, are
404. Shapes are checked here, the graph's rules by :mod:`plunk_events.services.workflow_graph`
(422 naming the field, 409 ``ACTIVE_EXECUTIONS`` while executions would be stranded).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from ..models import WorkflowStep, WorkflowTransition
from ..services import workflow_graph, workflows
from ..services.validation import MISSING
from . import schema
from . import serializers as s
from .mixins import PlunkAPIMixin
from .resources import id_parameter, json_body


class StrictIntegerField(serializers.IntegerField):
    """A JSON number that is a whole number: no strings, no booleans."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


def step_fields(*, config_required: bool) -> dict[str, serializers.Field]:
    return {
        "type": s.NamedChoiceField(
            enum_name="NewWorkflowStepType",
            choices=[c for c in WorkflowStep.Type.choices if c[0] != WorkflowStep.Type.TRIGGER],
            help_text="Not TRIGGER: a workflow's TRIGGER step is made with it.",
        ),
        "name": s.StrictCharField(min_length=1, max_length=100),
        "config": serializers.JSONField(
            required=config_required, help_text=s.STEP_CONFIG_HELP + " Default `{}`."
        ),
        "position": s.PositionField(
            required=False, help_text="`{x, y}` on the builder's canvas; default `{x: 0, y: 0}`."
        ),
    }


class AddStepRequest(serializers.Serializer):
    autoConnect = s.StrictBooleanField(
        required=False,
        default=True,
        help_text="Lead to the new step from the newest step that leads nowhere yet (not an "
        "EXIT): by the `yes` branch of a CONDITION, by both outcomes of a WAIT_FOR_EVENT.",
    )

    def get_fields(self):
        return {**step_fields(config_required=False), **super().get_fields()}


class InsertStepRequest(serializers.Serializer):
    def get_fields(self):
        fields = step_fields(config_required=False)
        fields["type"] = s.NamedChoiceField(
            enum_name="InsertedWorkflowStepType",
            choices=[
                c
                for c in WorkflowStep.Type.choices
                if c[0] not in (WorkflowStep.Type.TRIGGER, WorkflowStep.Type.EXIT)
            ],
            help_text="Not TRIGGER, not EXIT (it would end the flow mid-way).",
        )
        return fields


class UpdateStepRequest(serializers.Serializer):
    name = s.StrictCharField(min_length=1, max_length=100, required=False)
    position = s.PositionField(required=False)
    config = serializers.JSONField(
        required=False,
        help_text="Refused (409) while the workflow is enabled and has active executions; the "
        "TRIGGER step's config follows the workflow's eventName.",
    )


class CreateTransitionRequest(serializers.Serializer):
    fromStepId = serializers.UUIDField()
    toStepId = serializers.UUIDField()
    condition = s.BranchField(
        required=False,
        allow_null=True,
        help_text="Required leaving a CONDITION step (`{branch}`), else absent.",
    )
    waitOutcome = s.NamedChoiceField(
        enum_name="WaitOutcome",
        choices=WorkflowTransition.WaitOutcome.choices,
        required=False,
        allow_null=True,
        help_text="Required leaving a WAIT_FOR_EVENT step (TIMEOUT only if it has a timeout), "
        "else absent.",
    )
    priority = StrictIntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)


ERRORS_WRITE = {
    **schema.ERRORS_401_SECRET,
    404: schema.error_doc("No such workflow, step or transition in this project (or not a UUID)"),
    **schema.ERRORS_BODY_422,
}
ERROR_409_REFERENCE = {
    409: schema.error_doc(
        "A WAIT_FOR_EVENT step names an event being deleted by a live worker (CONFLICT)"
    )
}


def step_id_parameter() -> OpenApiParameter:
    return OpenApiParameter("stepId", str, OpenApiParameter.PATH, description="The step's UUID.")


def transition_id_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        "transitionId", str, OpenApiParameter.PATH, description="The transition's UUID."
    )


def step_json(step: WorkflowStep) -> dict:
    return s.WorkflowStepSerializer(step).data


class WorkflowGraphViewSet(PlunkAPIMixin, ViewSet):
    """A workflow's steps and transitions (its graph), and copies of it."""

    @extend_schema(
        operation_id="duplicateWorkflow",
        description="A disabled copy named `<name> (Copy)`, with copies of the steps and "
        "transitions; executions are not copied.",
        parameters=[id_parameter("workflow")],
        request=None,
        responses={
            201: s.WorkflowSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            **schema.ERRORS_409_REFERENCE_DELETING,
        },
        tags=["Workflows"],
    )
    def duplicate(self, request, pk: str):
        copy = workflows.duplicate_workflow(self.project, pk)
        return Response(s.WorkflowSerializer(copy).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="addWorkflowStep",
        parameters=[id_parameter("workflow")],
        request=AddStepRequest,
        responses={201: s.WorkflowStepSerializer, **ERRORS_WRITE, **ERROR_409_REFERENCE},
        tags=["Workflows"],
    )
    def add_step(self, request, pk: str):
        workflows.get_workflow_row(self.project, pk)
        body = AddStepRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        values = body.validated_data
        step = workflow_graph.add_step(
            self.project,
            pk,
            type=values["type"],
            name=values["name"],
            config=values.get("config"),
            position=values.get("position"),
            auto_connect=values["autoConnect"],
        )
        return Response(step_json(step), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="updateWorkflowStep",
        parameters=[id_parameter("workflow"), step_id_parameter()],
        request=UpdateStepRequest,
        responses={
            200: s.WorkflowStepSerializer,
            **ERRORS_WRITE,
            409: schema.error_doc(
                "A config change while the enabled workflow has active executions "
                "(ACTIVE_EXECUTIONS), or a WAIT_FOR_EVENT event being deleted (CONFLICT)"
            ),
        },
        tags=["Workflows"],
    )
    def update_step(self, request, pk: str, stepId: str):
        workflows.get_workflow_row(self.project, pk)
        body = UpdateStepRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        values = body.validated_data
        step = workflow_graph.update_step(
            self.project,
            pk,
            stepId,
            name=values.get("name", MISSING),
            position=values.get("position", MISSING),
            config=values.get("config", MISSING),
        )
        return Response(step_json(step))

    @extend_schema(
        operation_id="deleteWorkflowStep",
        description="Deletes the step and every step after it; with `splice=true` only the "
        "step, its parents leading to its child instead.",
        parameters=[
            id_parameter("workflow"),
            step_id_parameter(),
            OpenApiParameter(
                "splice",
                bool,
                description="`true`: keep the steps after it (not for CONDITION and "
                "WAIT_FOR_EVENT steps). Any other value means false.",
            ),
        ],
        responses={
            204: None,
            **schema.ERRORS_401_SECRET,
            404: ERRORS_WRITE[404],
            409: schema.error_doc(
                "Active executions are on a step that would go (ACTIVE_EXECUTIONS)"
            ),
            422: schema.error_doc("The TRIGGER step, or a splice of a step with several children"),
        },
        tags=["Workflows"],
    )
    def delete_step(self, request, pk: str, stepId: str):
        splice = request.query_params.get("splice") == "true"
        workflow_graph.delete_step(self.project, pk, stepId, splice=splice)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="createWorkflowTransition",
        parameters=[id_parameter("workflow")],
        request=CreateTransitionRequest,
        responses={201: s.WorkflowTransitionSerializer, **ERRORS_WRITE},
        tags=["Workflows"],
    )
    def create_transition(self, request, pk: str):
        workflows.get_workflow_row(self.project, pk)
        body = CreateTransitionRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        values = body.validated_data
        edge = workflow_graph.create_transition(
            self.project,
            pk,
            from_step_id=values["fromStepId"],
            to_step_id=values["toStepId"],
            condition=values.get("condition"),
            wait_outcome=values.get("waitOutcome"),
            priority=values["priority"],
        )
        body = s.WorkflowTransitionSerializer(edge).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="deleteWorkflowTransition",
        parameters=[id_parameter("workflow"), transition_id_parameter()],
        responses={
            204: None,
            **schema.ERRORS_401_SECRET,
            404: ERRORS_WRITE[404],
            409: schema.error_doc(
                "Active executions are on its target or a step after it (ACTIVE_EXECUTIONS)"
            ),
        },
        tags=["Workflows"],
    )
    def delete_transition(self, request, pk: str, transitionId: str):
        workflow_graph.delete_transition(self.project, pk, transitionId)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="insertWorkflowStep",
        description="Splits the transition `A → B` into `A → new → B`: the transition keeps "
        "its branch or outcome and leads to the new step, which leads on to B.",
        parameters=[id_parameter("workflow"), transition_id_parameter()],
        request=InsertStepRequest,
        responses={201: s.WorkflowStepSerializer, **ERRORS_WRITE, **ERROR_409_REFERENCE},
        tags=["Workflows"],
    )
    def insert_step(self, request, pk: str, transitionId: str):
        workflows.get_workflow_row(self.project, pk)
        body = InsertStepRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        values = body.validated_data
        step = workflow_graph.insert_step(
            self.project,
            pk,
            transitionId,
            type=values["type"],
            name=values["name"],
            config=values.get("config"),
            position=values.get("position"),
        )
        return Response(step_json(step), status=status.HTTP_201_CREATED)
