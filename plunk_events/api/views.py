"""``POST /v1/track`` and the ``/events`` family, thin over the event store."""

from __future__ import annotations

import re

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import ViewSet

from ..conf import conf
from ..services import deletion, events, idempotency, ingest, rollups
from ..services.errors import FieldErrorList, PlunkError, ValidationFailed
from ..services.validation import MISSING, parse_track, type_error
from . import schema
from .authentication import TrackKeyAuthentication
from .filters import ContactEventFilterSet, EventFilterSet, FilterSetViewMixin
from .formatting import encode_cursor, jsonable
from .formatting import iso_timestamp as iso
from .mixins import PlunkAPIMixin
from .params import date_window, lenient_int, parse_cursor
from .throttling import TrackRateThrottle

IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]{1,255}$")


def idempotency_key(request) -> str | None:
    """The ``Idempotency-Key`` header, if sent; 400 unless 1-255 printable ASCII."""
    if IDEMPOTENCY_HEADER not in request.META:
        return None
    value = request.META[IDEMPOTENCY_HEADER]
    if not _PRINTABLE_ASCII.match(value):
        raise PlunkError("Idempotency-Key must be 1-255 printable ASCII characters")
    return value


def track_result_json(result: ingest.TrackResult) -> dict:
    return {
        "contact": str(result.contact_id),
        "event": str(result.event_id),
        "timestamp": iso(result.timestamp),
    }


def checked_body_size(request, limit: int) -> int:
    """The body's declared size (``Content-Length``); a 413 above ``limit`` bytes."""
    try:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0
    if size > limit:
        raise PlunkError(f"Request body is {size} bytes; the limit is {limit}", status_code=413)
    return size


class PublicEndpointMixin(PlunkAPIMixin):
    """``/v1/*`` is called from browsers with the public key: any origin may call it,
    a CORS preflight needs no key, and a body over ``max_body_setting`` bytes is refused (413)."""

    authentication_classes = [TrackKeyAuthentication]
    throttle_classes = [TrackRateThrottle]
    cors_headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, Authorization, Idempotency-Key, X-Request-ID",
        "Access-Control-Expose-Headers": (
            "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, " + REPLAYED_HEADER
        ),
    }
    max_body_setting = "TRACK_MAX_BYTES"

    def initial(self, request, *args, **kwargs):
        if request.method == "OPTIONS":
            self.format_kwarg = self.get_format_suffix(**kwargs)
            negotiated = self.perform_content_negotiation(request)
            request.accepted_renderer, request.accepted_media_type = negotiated
            return
        super().initial(request, *args, **kwargs)
        checked_body_size(request, getattr(conf, self.max_body_setting))

    def options(self, request, *args, **kwargs):
        return Response(status=status.HTTP_200_OK)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in self.cors_headers.items():
            response[header] = value
        return response


class IdempotentPostMixin:
    """The ``Idempotency-Key`` of a write route: Plunk's 409 for a reused key, or with
    ``IDEMPOTENCY_REPLAY`` the first response again for a repeat of the same request.

    With replay, the view hands the service a :class:`~..services.idempotency.Replayable` whose
    ``render`` gives the response bytes from the service's result; the service renders and
    stores them before its commit, and the view answers with those same bytes.
    """

    #: The SHA-256 of the raw body when replay is on and the request has a key, else None.
    request_sha256: str | None = None

    def check_idempotency_key(self, request) -> str | None:
        """The request's key (None without one), after refusing or replaying a repeat."""
        key = idempotency_key(request)
        if key is None:
            return None
        if conf.IDEMPOTENCY_REPLAY:
            # Read before request.data: the raw bytes as sent, hashed before they are parsed.
            self.request_sha256 = idempotency.body_sha256(request.body)
        idempotency.check(self.project, key, request.method, request.path, self.request_sha256)
        return key

    def replayable(self, render) -> idempotency.Replayable | None:
        if self.request_sha256 is None:
            return None
        renderer = self.get_renderers()[0]
        return idempotency.Replayable(
            self.request_sha256,
            lambda result: renderer.render(render(result)),
            content_type=renderer.media_type,
        )

    def answer(self, payload_of, result, replay: idempotency.Replayable | None):
        """The response: the bytes the service stored with the claim, or a plain Response."""
        if replay is None:
            return Response(payload_of(result))
        return stored_response(replay.response)

    def handle_exception(self, exc):
        if isinstance(exc, idempotency.Replayed):
            response = stored_response(exc.response)
            response[REPLAYED_HEADER] = "true"
            return response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.request_sha256 is not None and REPLAYED_HEADER not in response:
            response[REPLAYED_HEADER] = "false"
        return response


def stored_response(stored: idempotency.StoredResponse) -> HttpResponse:
    return HttpResponse(stored.body, status=stored.status, content_type=stored.content_type)


def track_payload(result: ingest.TrackResult) -> dict:
    return {"success": True, "data": track_result_json(result)}


class TrackView(IdempotentPostMixin, PublicEndpointMixin, APIView):
    """Track an event for a contact, creating or updating the contact (Plunk ``POST /v1/track``)."""

    @extend_schema(
        operation_id="trackEvent",
        request=schema.TrackRequest,
        parameters=[schema.IDEMPOTENCY_PARAMETER, schema.REPLAYED_HEADER],
        responses={200: schema.TrackResponse, **schema.ERRORS_401_409_422},
        tags=["Public API"],
    )
    def post(self, request):
        key = self.check_idempotency_key(request)
        item = parse_track(request.data)
        replay = self.replayable(track_payload)
        result = ingest.track(
            self.project, item, idempotency_key=key, path=request.path, replay=replay
        )
        return self.answer(track_payload, result, replay)


class TrackBatchView(IdempotentPostMixin, PublicEndpointMixin, APIView):
    """Track up to ``BATCH_MAX_EVENTS`` events in one request (extension, not in Plunk).

    Each item is validated on its own: valid items are written together in one transaction,
    invalid ones are reported by index and written nowhere.
    """

    max_body_setting = "BATCH_MAX_BYTES"

    @extend_schema(
        operation_id="trackEventBatch",
        request=schema.TrackBatchRequest,
        parameters=[schema.IDEMPOTENCY_PARAMETER, schema.REPLAYED_HEADER],
        responses={200: schema.TrackBatchResponse, **schema.ERRORS_401_413_422},
        tags=["Public API"],
    )
    def post(self, request):
        key = self.check_idempotency_key(request)
        errors = FieldErrorList()
        if not isinstance(request.data, dict):
            type_error(errors, "body", "object", request.data)
            raise ValidationFailed(errors)
        events = request.data.get("events", MISSING)
        if not isinstance(events, list):
            type_error(errors, "events", "array", events)
        elif not events:
            errors.add("events", "Array must contain at least 1 element(s)", "too_small")
        elif len(events) > conf.BATCH_MAX_EVENTS:
            errors.add(
                "events",
                f"Array must contain at most {conf.BATCH_MAX_EVENTS} element(s)",
                "too_big",
            )
        if errors:
            raise ValidationFailed(errors)
        valid, results = [], []
        for index, body in enumerate(events):
            try:
                valid.append((index, parse_track(body, prefix=f"events.{index}.")))
                results.append(None)
            except ValidationFailed as exc:
                results.append({"index": index, "success": False, "errors": exc.errors})
        if not valid:
            raise ValidationFailed([e for result in results for e in result["errors"]])

        def payload(tracked: list[ingest.TrackResult]) -> dict:
            for (index, _), result in zip(valid, tracked, strict=True):
                results[index] = {
                    "index": index,
                    "success": True,
                    "data": track_result_json(result),
                }
            return {
                "success": True,
                "accepted": len(tracked),
                "rejected": len(events) - len(tracked),
                "results": results,
            }

        replay = self.replayable(payload)
        tracked = ingest.track_many(
            self.project,
            [item for _, item in valid],
            idempotency_key=key,
            path=request.path,
            replay=replay,
        )
        return self.answer(payload, tracked, replay)


def event_json(row: dict, *, with_contact: bool) -> dict:
    item = {
        "id": str(row["id"]),
        "name": row["name"],
        "contactId": str(row["contact_id"]) if row["contact_id"] else None,
        "emailId": str(row["email_id"]) if row["email_id"] else None,
        "data": row["data"],
        "createdAt": iso(row["created_at"]),
    }
    if with_contact:
        email = row.get("contact__email")
        item["contact"] = {"email": email} if email is not None else None
    return item


DELETE_EVENTS_RESPONSES = {
    200: schema.DeleteEventsResponse,
    **schema.ERRORS_400_401,
    **schema.ERROR_409_DELETION_RUNNING,
}


def alias_delete_schema(operation_id: str, name: str) -> dict:
    """``extend_schema`` arguments of a DELETE that shares its path with a GET (see below)."""
    return {
        "operation_id": operation_id,
        "summary": f"Delete the events named {name}",
        "description": "Not a delete of what GET on this path returns: this is "
        f"`DELETE /events/{{eventName}}` for the event name {name}, which routes here. "
        "Same guard and responses.",
        "responses": DELETE_EVENTS_RESPONSES,
        "tags": ["Events"],
    }


class EventViewSet(FilterSetViewMixin, PlunkAPIMixin, ViewSet):
    """The ``/events`` family; every route takes the secret key.

    Routes are declared by hand in ``api/urls.py`` so names with dots, slashes or words such as
    ``names`` still reach ``destroy`` (see :mod:`.urls`).
    """

    # The FilterSets validate the filters; the event service runs the keyset query with them.
    filterset_class = EventFilterSet

    def _page(self, request, *, default_limit: int, **filters) -> dict:
        errors = FieldErrorList()
        after = parse_cursor(request.query_params.get("cursor"), errors)
        if errors:
            raise ValidationFailed(errors)
        limit = lenient_int(request.query_params.get("limit"), default_limit, conf.EVENTS_MAX_LIMIT)
        with_contact = filters.get("contact_id") is None  # the contact route skips the join
        page = events.list_events(
            self.project, limit=limit, after=after, with_contact_email=with_contact, **filters
        )
        return {
            "events": [event_json(row, with_contact=with_contact) for row in page.events],
            "cursor": encode_cursor(page.next_after) if page.next_after else None,
            "hasMore": page.has_more,
        }

    @extend_schema(
        operation_id="listEvents",
        filters=True,  # ``eventName``, from the FilterSet
        parameters=[
            schema.limit_parameter(100),
            schema.CURSOR_PARAMETER,
        ],
        responses={200: schema.EventListResponse, **schema.ERRORS_401_422},
        tags=["Events"],
    )
    def list_events(self, request):
        # Not named ``list``: drf-spectacular would document the response as an array.
        filters = self.filterset(request).lookups()
        return Response(self._page(request, default_limit=100, **filters))

    @extend_schema(
        operation_id="listEventNames",
        responses={200: schema.EventNamesResponse, **schema.ERRORS_401},
        tags=["Events"],
    )
    def names(self, request, **kwargs):
        return Response({"eventNames": rollups.event_names(self.project)})

    @extend_schema(
        operation_id="getEventStats",
        filters=False,  # a list, but not of events: ``eventName`` does not apply
        parameters=[
            OpenApiParameter(
                "startDate", str, description="ISO 8601 date or date-time, inclusive."
            ),
            OpenApiParameter(
                "endDate", str, description="ISO 8601; a date alone covers that whole UTC day."
            ),
        ],
        responses={200: schema.EventStatsItem(many=True), **schema.ERRORS_401_422},
        tags=["Events"],
    )
    def stats(self, request, **kwargs):
        start, end = date_window(request.query_params)
        return Response(rollups.event_stats(self.project, start, end))

    @extend_schema(
        operation_id="listContactEvents",
        parameters=[schema.limit_parameter(50), schema.CURSOR_PARAMETER],
        responses={200: schema.ContactEventListResponse, **schema.ERRORS_401_422},
        tags=["Events"],
    )
    def contact_events(self, request, contactId: str, **kwargs):
        contact = ContactEventFilterSet({"contactId": contactId}, self.get_queryset())
        if not contact.is_valid():
            # Plunk never checks the contact: unknown or malformed ids list nothing.
            return Response({"events": [], "cursor": None, "hasMore": False})
        return Response(self._page(request, default_limit=50, **contact.lookups()))

    @extend_schema(
        operation_id="getEventUsage",
        description="For the name `contact`, `/events/contact/usage` is "
        "`GET /events/contact/{contactId}` with the contact id `usage` (Plunk's route "
        "order), so the usage of an event named `contact` cannot be read here.",
        responses={200: schema.EventUsageResponse, **schema.ERRORS_401},
        tags=["Events"],
    )
    def usage(self, request, eventName: str, **kwargs):
        return Response(jsonable(rollups.event_usage(self.project, eventName).as_dict()))

    @extend_schema(
        operation_id="deleteEventsByName",
        description="Names that read as another route (`names`, `stats`, `contact/<x>`, "
        "`<x>/usage`) reach that route's path, where this DELETE is documented too.",
        responses=DELETE_EVENTS_RESPONSES,
        tags=["Events"],
    )
    def destroy(self, request, eventName: str, **kwargs):
        deleted = deletion.delete_events_by_name(self.project, eventName)
        return Response({"deletedCount": deleted}, status=status.HTTP_200_OK)

    # DELETE on the four GET routes below is a delete by name (see :mod:`.urls`): event names may be
    # "names", "stats", "contact/<x>" or "<x>/usage", and ``DELETE /events/<name>`` with such a
    # name reaches these paths. The routes accept DELETE, so their ``Allow`` header lists it;
    # rather than hide it (an Allow header the schema contradicts), each path documents it as
    # what it is, a delete of the events whose name is that path.
    @extend_schema(**alias_delete_schema("deleteEventsNamedNames", '"names"'))
    def destroy_names(self, request, **kwargs):
        return self.destroy(request, eventName="names")

    @extend_schema(**alias_delete_schema("deleteEventsNamedStats", '"stats"'))
    def destroy_stats(self, request, **kwargs):
        return self.destroy(request, eventName="stats")

    @extend_schema(**alias_delete_schema("deleteEventsNamedContact", '"contact/{contactId}"'))
    def destroy_contact_named(self, request, contactId: str, **kwargs):
        return self.destroy(request, eventName=f"contact/{contactId}")

    @extend_schema(**alias_delete_schema("deleteEventsNamedUsage", '"{eventName}/usage"'))
    def destroy_usage_named(self, request, eventName: str, **kwargs):
        return self.destroy(request, eventName=f"{eventName}/usage")


class UnknownRouteView(PlunkAPIMixin, APIView):
    """404 in the envelope for any unknown path under the app's prefixes."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    schema = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise PlunkError(
            f"Route {request.method} {request.path} not found",
            code="RESOURCE_NOT_FOUND",
            status_code=404,
        )
