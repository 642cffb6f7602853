"""``/segments/<id>/contacts``, ``/members``, ``/compute`` and ``/refresh``: a segment's members.

Secret key only, errors in the envelope; ids of another project, or not UUIDs, are 404. The
work is done by :mod:`plunk_events.services.segments`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from ..services import automation, segments
from . import schema
from . import serializers as s
from .mixins import PlunkAPIMixin
from .params import lenient_int
from .resources import LENIENT_NUMBER, id_parameter, json_body


def emails_field() -> serializers.ListField:
    return serializers.ListField(
        child=s.StrictCharField(max_length=1000, trim_whitespace=False),
        min_length=1,
        max_length=segments.MAX_EMAILS,
        help_text="1 to 500 emails; trimmed and lowercased, duplicates count once.",
    )


class MembersRequest(serializers.Serializer):
    emails = emails_field()
    createMissing = s.StrictBooleanField(
        required=False, default=False, help_text="Create the contacts that do not exist."
    )
    subscribed = s.StrictBooleanField(
        required=False, default=True, help_text="Subscription of the contacts created."
    )


class RemoveMembersRequest(serializers.Serializer):
    emails = emails_field()


class AddMembersResponse(serializers.Serializer):
    added = serializers.IntegerField(help_text="Contacts found (members already included).")
    created = serializers.IntegerField()
    notFound = serializers.ListField(child=serializers.CharField())


class RemoveMembersResponse(serializers.Serializer):
    removed = serializers.IntegerField(help_text="Contacts found.")


class ComputeResponse(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    total = serializers.IntegerField()


class RefreshResponse(serializers.Serializer):
    memberCount = serializers.IntegerField()


class SegmentContactsResponse(serializers.Serializer):
    data = s.ContactSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    pageSize = serializers.IntegerField()
    totalPages = serializers.IntegerField()


ERRORS_400_NOT_STATIC = {
    400: schema.error_doc("Malformed JSON, or the segment is not STATIC (code BAD_REQUEST)")
}


class SegmentMembersViewSet(PlunkAPIMixin, ViewSet):
    """Members of a segment: stored rows for STATIC and tracked DYNAMIC segments, the live
    condition for untracked ones."""

    @extend_schema(
        operation_id="listSegmentContacts",
        parameters=[
            id_parameter("segment"),
            OpenApiParameter("page", int, description=f"1-based; default 1; {LENIENT_NUMBER}."),
            OpenApiParameter(
                "pageSize", int, description=f"Default 20, at most 100; {LENIENT_NUMBER}."
            ),
        ],
        responses={200: SegmentContactsResponse, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Segments"],
    )
    def contacts(self, request, pk: str):
        segment = automation.get_segment(self.project, pk)
        params = request.query_params
        page = segments.members(
            segment,
            page=lenient_int(params.get("page"), 1, 10**9),
            page_size=lenient_int(params.get("pageSize"), 20, segments.MAX_PAGE_SIZE),
        )
        return Response(
            {
                "data": s.ContactSerializer(page.contacts, many=True).data,
                "total": page.total,
                "page": page.page,
                "pageSize": page.page_size,
                "totalPages": page.total_pages,
            }
        )

    @extend_schema(
        operation_id="addSegmentMembers",
        parameters=[id_parameter("segment")],
        request=MembersRequest,
        responses={
            200: AddMembersResponse,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            **schema.ERRORS_BODY_422,
            **ERRORS_400_NOT_STATIC,
        },
        tags=["Segments"],
    )
    def add(self, request, pk: str):
        segment = automation.get_segment(self.project, pk)
        body = MembersRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        values = body.validated_data
        result = segments.add_members(
            segment,
            values["emails"],
            create_missing=values["createMissing"],
            subscribed=values["subscribed"],
        )
        return Response(result)

    @extend_schema(
        operation_id="removeSegmentMembers",
        description="The body is `{emails: [...]}` (1 to 500), as for `POST`.",
        parameters=[id_parameter("segment")],
        responses={
            200: RemoveMembersResponse,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            **schema.ERRORS_BODY_422,
            **ERRORS_400_NOT_STATIC,
        },
        tags=["Segments"],
    )
    def remove(self, request, pk: str):
        segment = automation.get_segment(self.project, pk)
        body = RemoveMembersRequest(data=json_body(request))
        body.is_valid(raise_exception=True)
        return Response(segments.remove_members(segment, body.validated_data["emails"]))

    @extend_schema(
        operation_id="computeSegment",
        parameters=[id_parameter("segment")],
        request=None,
        responses={
            200: ComputeResponse,
            **schema.ERRORS_401_SECRET,
            **schema.ERRORS_404,
            400: schema.error_doc("Membership tracking is off for this segment (BAD_REQUEST)"),
        },
        tags=["Segments"],
    )
    def compute(self, request, pk: str):
        return Response(segments.compute(automation.get_segment(self.project, pk)))

    @extend_schema(
        operation_id="refreshSegmentCount",
        parameters=[id_parameter("segment")],
        request=None,
        responses={200: RefreshResponse, **schema.ERRORS_401_SECRET, **schema.ERRORS_404},
        tags=["Segments"],
    )
    def refresh(self, request, pk: str):
        count = segments.refresh_count(automation.get_segment(self.project, pk))
        return Response({"memberCount": count})
