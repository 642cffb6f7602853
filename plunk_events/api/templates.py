"""``/templates`` and ``/templates/<id>``: Plunk's email templates.

Plunk's OpenAPI has ``GET``/``POST /templates``; the ``/templates/<id>`` routes (``GET``,
``PATCH``, ``DELETE``) mirror ``/segments/<id>``. Secret key only, every error in the envelope
(a missing ``from`` is a 422 naming the field, not Plunk's flat 400 "From address is required").
There is no domain verification here, so no 403 for an unverified sender domain. Our extension:
``bodyFormat`` (``HTML``, the default, or ``MARKDOWN``, converted to HTML at send time).

The rules of the values (emails, one-line subject) are :mod:`plunk_events.services.templates`'s,
shared with the admin; the serializer here checks JSON types and documents the shapes.
"""

from __future__ import annotations

import django_filters
from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from ..constants import EMAIL_MAX_LENGTH
from ..email_models import SUBJECT_MAX_LENGTH, Template
from ..services import templates
from . import schema
from .filters import STRICT, EnumFilter, FilterSetViewMixin, OrderFilter, SortedFilterSet
from .mixins import PlunkAPIMixin
from .pagination import PagePagination
from .resources import LENIENT_NUMBER, id_parameter, json_body
from .serializers import NamedChoiceField, StrictCharField, TimestampField

# ---------------------------------------------------------------------------------------------
# Shapes


@extend_schema_field({"type": "string", "format": "email"})
class EmailAddressField(StrictCharField):
    """A bare address; checked by the template service (``Invalid email``)."""


class TemplateSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    name = StrictCharField(max_length=templates.NAME_MAX_LENGTH, help_text="Internal name.")
    description = StrictCharField(
        max_length=templates.DESCRIPTION_MAX_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Internal note; not sent to recipients.",
    )
    subject = StrictCharField(
        max_length=SUBJECT_MAX_LENGTH,
        help_text="One line (no line breaks or other line separators); `{{variable}}` placeholders are filled at send time.",
    )
    body = StrictCharField(
        trim_whitespace=False,
        help_text="HTML (or Markdown, see `bodyFormat`) with `{{variable}}` placeholders "
        "filled with the contact's data at send time.",
    )
    type = NamedChoiceField(
        enum_name="TemplateType",
        choices=Template.Type.choices,
        required=False,
        help_text="Default `MARKETING` (sent to subscribed contacts only, with List-Unsubscribe "
        "headers); `TRANSACTIONAL` and `HEADLESS` are sent whatever the subscription.",
    )
    bodyFormat = NamedChoiceField(
        enum_name="TemplateBodyFormat",
        source="body_format",
        choices=Template.BodyFormat.choices,
        required=False,
        help_text="Extension: `HTML` (default) or `MARKDOWN`, converted to HTML at send time "
        "(placeholders are substituted, escaped, after the conversion).",
    )
    fromName = StrictCharField(
        source="from_name",
        max_length=templates.FROM_NAME_MAX_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Sender display name; no line breaks.",
    )
    replyTo = EmailAddressField(
        source="reply_to",
        max_length=EMAIL_MAX_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Reply-To address; empty or null for none.",
    )
    projectId = serializers.UUIDField(source="project_id", read_only=True)
    createdAt = TimestampField(source="created_at", read_only=True)
    updatedAt = TimestampField(source="updated_at", read_only=True)

    def get_fields(self):
        """``from`` is a Python keyword, so it cannot be a class attribute."""
        fields = super().get_fields()
        fields["from"] = EmailAddressField(
            source="from_email",
            max_length=EMAIL_MAX_LENGTH,
            help_text="Sender address, required on create (no domain verification here).",
        )
        return fields


class TemplateListResponse(serializers.Serializer):
    data = TemplateSerializer(many=True)
    total = serializers.IntegerField(help_text="Templates matching the filters, on all pages.")
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
    totalPages = serializers.IntegerField()


# ---------------------------------------------------------------------------------------------
# List filters


class TemplateFilterSet(SortedFilterSet):
    """``GET /templates``: Plunk's ``type``, ``search``, ``sort`` and ``dir``."""

    sort_fields = {"createdAt": "created_at", "updatedAt": "updated_at", "name": "name"}

    type = EnumFilter(
        choices=Template.Type.choices,
        help_text="Only templates of this type; empty means all, any other value is a 422.",
    )
    search = django_filters.CharFilter(
        method="search_text",
        help_text="Case-insensitive substring of the name, the description or the subject.",
    )
    sort = OrderFilter(
        choices=[("createdAt", "creation time"), ("updatedAt", "last change"), ("name", "name")],
        default="createdAt",
        help_text=f"Default `createdAt`. {STRICT}",
    )

    class Meta:
        model = Template
        fields: list[str] = []

    def search_text(self, queryset, name, value: str):
        return queryset.filter(
            Q(name__icontains=value) | Q(description__icontains=value) | Q(subject__icontains=value)
        )


# ---------------------------------------------------------------------------------------------
# Views


class TemplateViewSet(FilterSetViewMixin, PlunkAPIMixin, ViewSet):
    """Email templates: a subject and body with ``{{variable}}`` placeholders, which
    ``POST /v1/send`` and SEND_EMAIL workflow steps fill with a contact's data."""

    filterset_class = TemplateFilterSet

    @extend_schema(
        operation_id="listTemplates",
        filters=True,  # ``type``, ``search``, ``sort`` and ``dir``, from the FilterSet
        parameters=[
            OpenApiParameter("page", int, description=f"1-based; default 1; {LENIENT_NUMBER}."),
            OpenApiParameter(
                "pageSize",
                int,
                description=f"Default 20, at most 100; as in Plunk, {LENIENT_NUMBER}.",
            ),
        ],
        responses={
            200: TemplateListResponse,
            **schema.ERRORS_401_SECRET,
            422: schema.error_doc(
                "Bad `type`, `sort` or `dir`, or a query value the database cannot store"
            ),
        },
        tags=["Templates"],
    )
    def list_templates(self, request):
        listed = self.filter_queryset(self.get_queryset())
        paginator = PagePagination()
        page = paginator.paginate_queryset(listed, request, view=self)
        return paginator.get_paginated_response(TemplateSerializer(page, many=True).data)

    @extend_schema(
        operation_id="createTemplate",
        request=TemplateSerializer,
        responses={201: TemplateSerializer, **schema.ERRORS_401_SECRET, **schema.ERRORS_BODY_422},
        tags=["Templates"],
    )
    def create(self, request):
        serializer = TemplateSerializer(data=json_body(request))
        serializer.is_valid(raise_exception=True)
        template = templates.create_template(self.project, **serializer.validated_data)
        return Response(TemplateSerializer(template).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="getTemplate",
        parameters=[id_parameter("template")],
        responses={200: TemplateSerializer, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Templates"],
    )
    def retrieve(self, request, pk: str):
        return Response(TemplateSerializer(templates.get_template(self.project, pk)).data)

    @extend_schema(
        operation_id="updateTemplate",
        parameters=[id_parameter("template")],
        request=TemplateSerializer(partial=True),
        responses={
            200: TemplateSerializer,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            **schema.ERRORS_BODY_422,
        },
        tags=["Templates"],
    )
    def partial_update(self, request, pk: str):
        templates.get_template(self.project, pk)  # 404 before the body's 422
        serializer = TemplateSerializer(data=json_body(request), partial=True)
        serializer.is_valid(raise_exception=True)
        template = templates.update_template(self.project, pk, **serializer.validated_data)
        return Response(TemplateSerializer(template).data)

    @extend_schema(
        operation_id="deleteTemplate",
        parameters=[id_parameter("template")],
        responses={
            204: None,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            409: schema.error_doc(
                "A workflow's SEND_EMAIL step uses the template (CONFLICT, "
                "`error.details.usedInWorkflows`): change or delete those steps first"
            ),
        },
        tags=["Templates"],
    )
    def destroy(self, request, pk: str):
        templates.delete_template(self.project, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
