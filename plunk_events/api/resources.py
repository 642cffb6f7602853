"""``/contacts``, ``/segments`` and ``/workflows``: enough of Plunk's sibling resources to manage
what the delete guard of ``DELETE /events/<name>`` depends on.

Secret key only; every error in the envelope; ids of another project, or ids that are not
UUIDs, answer 404 ``RESOURCE_NOT_FOUND``. Writes go through the services (contacts through the
event store, segments through :mod:`plunk_events.services.automation`, workflows through
:mod:`plunk_events.services.workflows`; their steps, transitions and executions have their
routes in :mod:`.workflow_graph` and :mod:`.workflow_executions`).
"""

from __future__ import annotations

from typing import Any

from django.db import router
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from ..models import Contact, Segment
from ..services import automation, contacts, workflows
from ..services.errors import FieldErrorList, ValidationFailed, uuid_or_404
from ..services.validation import MISSING, check_data, check_email, check_subscribed, type_error
from . import schema
from . import serializers as s
from .filters import ContactFilterSet, FilterSetViewMixin, WorkflowFilterSet
from .mixins import PlunkAPIMixin
from .pagination import ContactCursorPagination, PagePagination

#: ``limit``, ``page`` and ``pageSize`` are read as Plunk reads them (``parseInt(x) || default``).
LENIENT_NUMBER = "a value that is not a whole number (`null`, `abc`) or is < 1 gives the default"


def id_parameter(resource: str) -> OpenApiParameter:
    """The ``pk`` URL group, which drf-spectacular names ``id`` in the schema."""
    return OpenApiParameter("id", str, OpenApiParameter.PATH, description=f"The {resource}'s UUID.")


def json_body(request) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    body = request.data
    if not isinstance(body, dict):
        errors = FieldErrorList()
        type_error(errors, "body", "object", body)
        raise ValidationFailed(errors)
    return body


# ---------------------------------------------------------------------------------------------
# Contacts


class ContactViewSet(FilterSetViewMixin, PlunkAPIMixin, ViewSet):
    """Plunk's contacts (Plunk's OpenAPI ``/contacts``): the same email, data and subscription
    rules as ``POST /v1/track``, including the ``contact.subscribed``/``unsubscribed`` events."""

    filterset_class = ContactFilterSet

    @extend_schema(
        operation_id="listContacts",
        filters=True,  # ``search`` and ``subscribed``, from the FilterSet
        parameters=[
            OpenApiParameter(
                "limit",
                int,
                description=f"Default 20, at most 100; as in Plunk, {LENIENT_NUMBER}.",
            ),
            OpenApiParameter("cursor", str, description="The `cursor` of the previous page."),
            OpenApiParameter(
                "sort",
                str,
                enum=["createdAt", "email"],
                default="createdAt",
                description="Empty means the default; any other value is a 422.",
            ),
            OpenApiParameter(
                "dir",
                str,
                enum=["asc", "desc"],
                default="desc",
                description="Empty means the default; any other value is a 422.",
            ),
        ],
        responses={
            200: s.ContactListResponse,
            **schema.ERRORS_401_SECRET,
            422: schema.error_doc("Bad `subscribed`, `sort`, `dir` or `cursor`"),
        },
        tags=["Contacts"],
    )
    def list_contacts(self, request):
        # Filters first: a bad ``subscribed`` is the 422, before ``sort``, ``dir`` or ``cursor``.
        listed = self.filter_queryset(self.get_queryset())
        paginator = ContactCursorPagination()
        page = paginator.paginate_queryset(listed, request, view=self)
        return paginator.get_paginated_response(s.ContactSerializer(page, many=True).data)

    @extend_schema(
        operation_id="createContact",
        request=s.ContactCreate,
        responses={
            201: OpenApiResponse(s.ContactUpsertResponse, description="Contact created"),
            200: OpenApiResponse(s.ContactUpsertResponse, description="Contact updated"),
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_BODY_422,
        },
        tags=["Contacts"],
    )
    def create(self, request):
        body = json_body(request)
        errors = FieldErrorList()
        email = check_email(errors, body.get("email", MISSING))
        subscribed = check_subscribed(errors, body.get("subscribed", MISSING))
        data = check_data(errors, body.get("data", MISSING))
        if errors:
            raise ValidationFailed(errors)
        state = contacts.upsert_contact(self.project, email, data=data, subscribed=subscribed)
        # Read back from the primary: a replica may not have the row yet.
        contact = contacts.get_contact(self.project, state.id, using=router.db_for_write(Contact))
        payload = s.ContactSerializer(contact).data
        payload["_meta"] = {"isNew": state.created, "isUpdate": not state.created}
        return Response(payload, status=201 if state.created else 200)

    @extend_schema(
        operation_id="getContact",
        parameters=[id_parameter("contact")],
        responses={200: s.ContactSerializer, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Contacts"],
    )
    def retrieve(self, request, pk: str):
        return Response(s.ContactSerializer(contacts.get_contact(self.project, pk)).data)

    @extend_schema(
        operation_id="updateContact",
        parameters=[id_parameter("contact")],
        request=s.ContactUpdate,
        responses={
            200: s.ContactSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            409: schema.error_doc("Another contact of the project has this email"),
            **schema.ERRORS_BODY_422,
        },
        tags=["Contacts"],
    )
    def partial_update(self, request, pk: str):
        contact = contacts.get_contact(self.project, pk)
        body = json_body(request)
        errors = FieldErrorList()
        email = check_email(errors, body["email"]) if "email" in body else None
        subscribed = check_subscribed(errors, body.get("subscribed", MISSING))
        data = check_data(errors, body.get("data", MISSING))
        if errors:
            raise ValidationFailed(errors)
        contact = contacts.update_contact(
            self.project, contact.pk, email=email, data=data, subscribed=subscribed
        )
        return Response(s.ContactSerializer(contact).data)

    @extend_schema(
        operation_id="deleteContact",
        parameters=[id_parameter("contact")],
        responses={204: None, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Contacts"],
    )
    def destroy(self, request, pk: str):
        contacts.delete_contact(self.project, uuid_or_404("Contact", pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------
# Segments


class SegmentViewSet(PlunkAPIMixin, ViewSet):
    """Audience segments; ``condition`` uses Plunk's filter grammar and its
    ``event.<name>`` filters make those event names undeletable while the segment exists."""

    @extend_schema(
        operation_id="listSegments",
        responses={200: s.SegmentSerializer(many=True), **schema.ERRORS_401_SECRET},
        tags=["Segments"],
    )
    def list(self, request):
        segments = Segment.objects.filter(project=self.project).order_by("-created_at", "-id")
        return Response(s.SegmentSerializer(segments, many=True).data)

    @extend_schema(
        operation_id="createSegment",
        request=s.SegmentSerializer,
        responses={
            201: s.SegmentSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_409_REFERENCE_DELETING,
            **schema.ERRORS_BODY_422,
        },
        tags=["Segments"],
    )
    def create(self, request):
        serializer = s.SegmentSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        segment = automation.create_segment(
            self.project,
            name=values["name"],
            description=values.get("description"),
            type=values.get("type", Segment.Type.DYNAMIC),
            condition=values.get("condition"),
            track_membership=values.get("track_membership", False),
        )
        return Response(s.SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="getSegment",
        parameters=[id_parameter("segment")],
        responses={200: s.SegmentSerializer, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Segments"],
    )
    def retrieve(self, request, pk: str):
        return Response(s.SegmentSerializer(automation.get_segment(self.project, pk)).data)

    @extend_schema(
        operation_id="updateSegment",
        parameters=[id_parameter("segment")],
        request=s.SegmentSerializer(partial=True),
        responses={
            200: s.SegmentSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            **schema.ERRORS_409_REFERENCE_DELETING,
            **schema.ERRORS_BODY_422,
        },
        tags=["Segments"],
    )
    def partial_update(self, request, pk: str):
        automation.get_segment(self.project, pk)
        serializer = s.SegmentSerializer(data=json_body(request), partial=True)
        serializer.is_valid(raise_exception=True)
        segment = automation.update_segment(self.project, pk, **serializer.validated_data)
        return Response(s.SegmentSerializer(segment).data)

    @extend_schema(
        operation_id="deleteSegment",
        parameters=[id_parameter("segment")],
        responses={204: None, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Segments"],
    )
    def destroy(self, request, pk: str):
        automation.delete_segment(self.project, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------
# Workflows

WORKFLOW_PREFETCH = ("steps", "transitions")


def trigger_event_name(event_name: str | None, trigger_config) -> str | None:
    """The new trigger event of a PATCH: ``eventName``, or Plunk's ``triggerConfig.eventName``
    (both may be sent if they agree)."""
    if trigger_config is MISSING:
        return event_name
    errors = FieldErrorList()
    if not isinstance(trigger_config, dict):
        type_error(errors, "triggerConfig", "object", trigger_config)
    else:
        name = trigger_config.get("eventName", MISSING)
        if not isinstance(name, str):
            type_error(errors, "triggerConfig.eventName", "string", name)
        elif event_name is not None and name.strip() != event_name.strip():
            message = "Differs from eventName: send one of them"
            errors.add("triggerConfig.eventName", message, "custom")
        else:
            event_name = name
    if errors:
        raise ValidationFailed(errors)
    return event_name


class WorkflowViewSet(FilterSetViewMixin, PlunkAPIMixin, ViewSet):
    """Event-triggered workflows: the trigger event and every WAIT_FOR_EVENT step's
    event are references that the delete guard honours, whether the workflow is enabled or not."""

    filterset_class = WorkflowFilterSet

    @extend_schema(
        operation_id="listWorkflows",
        filters=True,  # ``search``, ``status``, ``sort`` and ``dir``, from the FilterSet
        parameters=[
            OpenApiParameter("page", int, description=f"1-based; default 1; {LENIENT_NUMBER}."),
            OpenApiParameter(
                "pageSize",
                int,
                description=f"Default 20, at most 100; as in Plunk, {LENIENT_NUMBER}.",
            ),
        ],
        responses={
            200: s.WorkflowListResponse,
            **schema.ERRORS_401_SECRET,
            422: schema.error_doc(
                "Bad `status`, `sort` or `dir`, or a query value the database cannot store"
            ),
        },
        tags=["Workflows"],
    )
    def list_workflows(self, request):
        # Newest first unless ``sort``/``dir`` say otherwise (the FilterSet orders).
        listed = self.filter_queryset(self.get_queryset().prefetch_related(*WORKFLOW_PREFETCH))
        paginator = PagePagination()
        page = paginator.paginate_queryset(listed, request, view=self)
        return paginator.get_paginated_response(s.WorkflowSerializer(page, many=True).data)

    @extend_schema(
        operation_id="createWorkflow",
        request=s.WorkflowSerializer,
        responses={
            201: s.WorkflowSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_409_REFERENCE_DELETING,
            **schema.ERRORS_BODY_422,
        },
        tags=["Workflows"],
    )
    def create(self, request):
        serializer = s.WorkflowSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        workflow = workflows.create_workflow(
            self.project,
            name=values["name"],
            event_name=values["eventName"],
            description=values.get("description"),
            enabled=values.get("enabled", False),
            allow_reentry=values.get("allow_reentry", False),
            steps=[dict(step) for step in values.get("steps", [])],
        )
        return Response(s.WorkflowSerializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="getWorkflow",
        parameters=[id_parameter("workflow")],
        responses={200: s.WorkflowSerializer, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Workflows"],
    )
    def retrieve(self, request, pk: str):
        return Response(s.WorkflowSerializer(workflows.get_workflow(self.project, pk)).data)

    @extend_schema(
        operation_id="updateWorkflow",
        parameters=[id_parameter("workflow")],
        request=s.WorkflowSerializer(partial=True),
        responses={
            200: s.WorkflowSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            409: schema.error_doc(
                "An event name the new state references is being deleted by a live worker "
                "(CONFLICT, `error.details.deletions`), or the trigger changes while the enabled "
                "workflow has active executions, or `steps` would replace steps executions are on "
                "(ACTIVE_EXECUTIONS, `error.details.activeExecutions`)"
            ),
            **schema.ERRORS_BODY_422,
        },
        tags=["Workflows"],
    )
    def partial_update(self, request, pk: str):
        workflows.get_workflow(self.project, pk)
        serializer = s.WorkflowSerializer(data=json_body(request), partial=True)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        steps = values.pop("steps", None)
        event_name = trigger_event_name(
            values.pop("eventName", None), values.pop("trigger_config", MISSING)
        )
        workflow = workflows.update_workflow(
            self.project,
            pk,
            event_name=event_name,
            steps=[dict(step) for step in steps] if steps is not None else None,
            **values,
        )
        return Response(s.WorkflowSerializer(workflow).data)

    @extend_schema(
        operation_id="deleteWorkflow",
        parameters=[id_parameter("workflow")],
        responses={
            204: None,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            409: schema.error_doc(
                "The workflow has RUNNING or WAITING executions (ACTIVE_EXECUTIONS): wait for "
                "them or cancel them first"
            ),
        },
        tags=["Workflows"],
    )
    def destroy(self, request, pk: str):
        workflows.delete_workflow(self.project, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
