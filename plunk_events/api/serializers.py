"""Serializers of ``/contacts``, ``/segments`` and ``/workflows`` with Plunk's camelCase fields.

Input fields are strict about JSON types (a number is not a string, ``"true"`` is not a boolean),
as Plunk's zod schemas are. Rules beyond shapes (condition grammar, step configs, contact data)
live in the services; contact bodies are checked with :mod:`plunk_events.services.validation`
like ``/v1/track``, so their serializers here only describe the shapes for the OpenAPI schema.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Segment, WorkflowStep, WorkflowTransition
from .formatting import iso_timestamp


class TimestampField(serializers.DateTimeField):
    """``2024-01-15T10:30:00.000Z``: UTC, milliseconds, ``Z``."""

    def to_representation(self, value):
        return iso_timestamp(value) if value is not None else None


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose enum is the schema component ``enum_name`` (``api/openapi.py``), so
    the choice sets of fields that share a name (``type``, ``status``) never collide."""

    def __init__(self, *, enum_name: str, **kwargs):
        self.enum_name = enum_name
        super().__init__(**kwargs)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class ConditionSerializer(serializers.Serializer):
    """Documents Plunk's ``FilterCondition`` (validated by ``services.conditions``)."""

    logic = serializers.ChoiceField(choices=["AND", "OR"])
    groups = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        help_text="`{filters: [{field, operator, value?, unit?}], conditions?: FilterCondition}`; "
        "filters of a group are ANDed, `logic` combines the groups.",
    )


@extend_schema_field(ConditionSerializer)
class ConditionField(serializers.JSONField):
    """Any JSON in; the segment service validates it against the grammar with field paths."""


class TriggerConfigSerializer(serializers.Serializer):
    eventName = serializers.CharField()


@extend_schema_field(TriggerConfigSerializer)
class TriggerConfigField(serializers.JSONField):
    """The stored trigger config, rendered as is."""


# ---------------------------------------------------------------------------------------------
# Contacts


class ContactSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    subscribed = serializers.BooleanField()
    data = serializers.JSONField(allow_null=True)
    createdAt = TimestampField(source="created_at")
    updatedAt = TimestampField(source="updated_at")


class ContactMetaSerializer(serializers.Serializer):
    isNew = serializers.BooleanField()
    isUpdate = serializers.BooleanField()


class ContactUpsertResponse(ContactSerializer):
    """A contact plus ``_meta`` (a name a class attribute cannot carry)."""

    def get_fields(self):
        fields = super().get_fields()
        fields["_meta"] = ContactMetaSerializer()
        return fields


class ContactCreate(serializers.Serializer):
    email = serializers.EmailField(help_text="Trimmed and lowercased; the upsert key.")
    subscribed = serializers.BooleanField(
        required=False, help_text="Default true for a new contact; a flip records an event."
    )
    data = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='`null` deletes a key, `""` is ignored, reserved keys are skipped, '
        "`{value, persistent: false}` stays off the contact.",
    )


class ContactUpdate(ContactCreate):
    email = serializers.EmailField(
        required=False, help_text="409 CONFLICT if another contact of the project has it."
    )


class ContactListResponse(serializers.Serializer):
    data = ContactSerializer(many=True)
    cursor = serializers.CharField(
        allow_null=True, help_text="Id of the last contact; pass back as `cursor`."
    )
    hasMore = serializers.BooleanField()
    total = serializers.IntegerField(help_text="Only on the first page; 0 afterwards.")


# ---------------------------------------------------------------------------------------------
# Segments


class SegmentSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    name = StrictCharField(min_length=1, max_length=100)
    description = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    type = serializers.ChoiceField(choices=Segment.Type.choices, required=False)
    condition = ConditionField(
        required=False,
        allow_null=True,
        help_text="Required for DYNAMIC segments; ignored (stored null) for STATIC ones.",
    )
    trackMembership = StrictBooleanField(source="track_membership", required=False)
    memberCount = serializers.IntegerField(source="member_count", read_only=True)
    projectId = serializers.UUIDField(source="project_id", read_only=True)
    createdAt = TimestampField(source="created_at", read_only=True)
    updatedAt = TimestampField(source="updated_at", read_only=True)
    slug = serializers.CharField(
        read_only=True, help_text="Extension: used in `segment.<slug>.entry` / `.exit` events."
    )


# ---------------------------------------------------------------------------------------------
# Workflows


class PositionSerializer(serializers.Serializer):
    x = serializers.FloatField()
    y = serializers.FloatField()


@extend_schema_field(PositionSerializer)
class PositionField(serializers.JSONField):
    """Where the builder draws a step: ``{x, y}`` (checked by the graph service)."""


STEP_CONFIG_HELP = (
    "By type: WAIT_FOR_EVENT `{eventName, timeout?}` (seconds, at most 31536000); DELAY "
    "`{amount, unit}` (minutes|hours|days, at most 365 days); CONDITION `{field, operator, "
    "value?}` or `{mode: 'multi', field, branches: [{id, name, operator, value?}]}`; WEBHOOK "
    "`{url, method?, headers?, body?}`; UPDATE_CONTACT `{updates?, subscriptionAction?}`; EXIT "
    "`{reason?}`; SEND_EMAIL `{templateId?, recipient?: {type: CONTACT|CUSTOM, customEmail?}}` "
    "(`templateId`: a template of the project)."
)


class WorkflowStepSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    type = NamedChoiceField(choices=WorkflowStep.Type.choices, enum_name="WorkflowStepType")
    name = StrictCharField(min_length=1, max_length=100)
    position = PositionField(read_only=True)
    config = serializers.DictField(required=False, help_text=STEP_CONFIG_HELP)


class BranchSerializer(serializers.Serializer):
    branch = serializers.CharField(
        help_text="`yes`/`no`, or a multi-branch id or `default`, of the CONDITION step left."
    )


@extend_schema_field(BranchSerializer)
class BranchField(serializers.JSONField):
    """``{branch}`` leaving a CONDITION step, else null (checked by the graph service)."""


class WorkflowTransitionSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    fromStepId = serializers.UUIDField(source="from_step_id")
    toStepId = serializers.UUIDField(source="to_step_id")
    condition = BranchField(allow_null=True)
    waitOutcome = NamedChoiceField(
        enum_name="WaitOutcome",
        source="wait_outcome",
        choices=WorkflowTransition.WaitOutcome.choices,
        allow_null=True,
        help_text="Leaving a WAIT_FOR_EVENT step: taken when the event arrives, or on timeout.",
    )
    priority = serializers.IntegerField(min_value=0, help_text="Lower is tried first.")
    createdAt = TimestampField(source="created_at", read_only=True)


class WorkflowSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    name = StrictCharField(min_length=1, max_length=100)
    description = StrictCharField(max_length=500, required=False, allow_null=True, allow_blank=True)
    eventName = StrictCharField(
        max_length=255,
        write_only=True,
        help_text="The trigger event (trimmed); creates the TRIGGER step.",
    )
    enabled = StrictBooleanField(required=False)
    triggerType = serializers.CharField(source="trigger_type", read_only=True)
    triggerConfig = TriggerConfigField(
        source="trigger_config",
        required=False,
        help_text="On PATCH, `{eventName}` does what `eventName` does (Plunk's field).",
    )
    allowReentry = StrictBooleanField(source="allow_reentry", required=False)
    steps = WorkflowStepSerializer(
        many=True,
        required=False,
        help_text="Steps after the automatic TRIGGER step, chained in this order (a CONDITION "
        "leads on by its `yes` branch, a WAIT_FOR_EVENT by both outcomes; nothing may follow "
        "an EXIT). On PATCH they replace every step after the trigger.",
    )
    transitions = WorkflowTransitionSerializer(many=True, read_only=True)
    createdAt = TimestampField(source="created_at", read_only=True)
    updatedAt = TimestampField(source="updated_at", read_only=True)


class WorkflowListResponse(serializers.Serializer):
    data = WorkflowSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
    totalPages = serializers.IntegerField()
