"""Serializers that only describe request and response shapes for the OpenAPI schema.

The views validate with :mod:`plunk_events.services.validation` (the hot path needs no
serializer); these classes make drf-spectacular document the real shapes, not DRF defaults.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField(
        help_text="invalid_type, invalid_string, too_small, too_big, reserved_event, ..."
    )
    received = serializers.JSONField(required=False)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="VALIDATION_ERROR, INVALID_API_KEY, IDEMPOTENCY_KEY_REUSED, ..."
    )
    message = serializers.CharField()
    statusCode = serializers.IntegerField()
    requestId = serializers.CharField()
    errors = FieldErrorSerializer(many=True, required=False)
    details = serializers.DictField(required=False)
    suggestion = serializers.CharField(required=False)


class ErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    message = serializers.CharField(help_text="Same as error.message (for Plunk's Node SDK)")
    error = ErrorBodySerializer()
    timestamp = serializers.DateTimeField()


def error_doc(description: str) -> OpenApiResponse:
    """An error response of an operation: the envelope, with what it means there."""
    return OpenApiResponse(ErrorSerializer, description=description)


#: Every authenticated route is rate limited, so every error set below includes the 429.
ERRORS_429 = {
    429: error_doc(
        "Rate limit exceeded (code RATE_LIMIT_EXCEEDED): the project's limit for this route, or "
        "too many failed authentications from this address. `Retry-After` and "
        "`error.details.retryAfter` give the seconds to wait; every response of the route "
        "carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`."
    )
}
#: Every route checks its query and path values before they reach SQL.
ERRORS_422_STORABLE = {
    422: error_doc("A query or path value the database cannot store (a NUL, an unpaired surrogate)")
}
#: Every route reads the database.
ERRORS_503 = {
    503: error_doc(
        "The database is unavailable (code DATABASE_ERROR): nothing was written; retry after "
        "`Retry-After` seconds."
    )
}
#: Every route, when a request carries a body: checked before anything reads it.
ERRORS_415 = {
    415: error_doc(
        "A body whose Content-Type is not JSON (`application/json`, `application/*+json`) or "
        "names a charset JSON does not allow (code UNSUPPORTED_MEDIA_TYPE)"
    )
}
ERRORS_401 = {
    401: error_doc("Missing or invalid API key"),
    **ERRORS_415,
    **ERRORS_422_STORABLE,
    **ERRORS_429,
    **ERRORS_503,
}
#: Every route with a JSON request body.
ERRORS_BODY = {
    400: error_doc("Malformed JSON"),
    413: error_doc("Request body too large"),
}
ERRORS_401_422 = {**ERRORS_401, 422: error_doc("Invalid query parameter")}
#: Contacts, segments and workflows take the secret key only.
ERRORS_401_SECRET = {**ERRORS_401, 401: error_doc("Missing or invalid secret key")}
ERRORS_404 = {404: error_doc("No such id in this project (or not a UUID)")}
#: A contact, segment or workflow body.
ERRORS_BODY_422 = {
    **ERRORS_BODY,
    422: error_doc("Validation failed; `errors[]` names each field by its path"),
}
#: A segment or workflow write naming an event whose delete job is unfinished.
ERRORS_409_REFERENCE_DELETING = {
    409: error_doc(
        "An event name the new state references is being deleted by a live worker; "
        "`error.details.deletions` lists the jobs. A job whose worker is gone is finished "
        "first and the write goes ahead."
    )
}
ERRORS_400_401 = {
    400: error_doc("System event, or referenced by a segment or workflow"),
    **ERRORS_401,
}
IDEMPOTENCY_409 = (
    "Idempotency-Key already used (code IDEMPOTENCY_KEY_REUSED). With `IDEMPOTENCY_REPLAY` on, "
    "only for a different request (method, path or raw body; `details.reason` "
    "`different_request`) or one whose response was not stored (`not_replayable`: over 64 KB, "
    "or claimed while replay was off)"
)
ERRORS_401_409_422 = {
    **ERRORS_BODY,
    400: error_doc("Malformed JSON, or an Idempotency-Key that is not 1-255 printable ASCII"),
    **ERRORS_401,
    409: error_doc(IDEMPOTENCY_409),
    413: error_doc("Body over `TRACK_MAX_BYTES` (1 MB by default)"),
    422: error_doc("Validation failed"),
}
ERRORS_401_413_422 = {
    **ERRORS_BODY,
    400: error_doc("Malformed JSON, or an Idempotency-Key that is not 1-255 printable ASCII"),
    **ERRORS_401,
    409: error_doc(IDEMPOTENCY_409),
    413: error_doc("Body over `BATCH_MAX_BYTES` (500 KB by default)"),
    422: error_doc("No valid item, or not 1 to `BATCH_MAX_EVENTS` items"),
}

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    description="1-255 printable ASCII characters, per project; a reused key is refused with 409 "
    "for `IDEMPOTENCY_KEY_TTL_HOURS` (24). With the setting `IDEMPOTENCY_REPLAY` (off by "
    "default, as in Plunk), a repeat of the same request (method, path and raw body) after it "
    "succeeded gets the original status and body again, byte for byte (same ids and "
    "timestamp), with `Idempotent-Replayed: true`, and writes nothing; a repeat sent while the "
    "first is still running waits for it. A 4xx or 5xx leaves the key free.",
)
REPLAYED_HEADER = OpenApiParameter(
    "Idempotent-Replayed",
    str,
    location=OpenApiParameter.HEADER,
    response=[200],
    enum=["true", "false"],
    description="Only with `IDEMPOTENCY_REPLAY` and an `Idempotency-Key`: `true` on a replayed "
    "response, `false` on the first one (and on any other answer to a request with the key).",
)
CURSOR_PARAMETER = OpenApiParameter(
    "cursor", str, description="Extension: the `cursor` of the previous page (keyset pagination)."
)


def limit_parameter(default: int) -> OpenApiParameter:
    return OpenApiParameter(
        "limit",
        int,
        description=f"Default {default}, at most `EVENTS_MAX_LIMIT` (1000). Read as Plunk reads "
        "it (`parseInt(limit) || default`): a value that is not a whole number (`null`, `abc`, "
        "`1.5`) or is <= 0 gives the default rather than a 422.",
    )


class TrackRequest(serializers.Serializer):
    email = serializers.EmailField(help_text="Trimmed and lowercased before lookup.")
    event = serializers.CharField(
        max_length=255, help_text="Verbatim; reserved system names are refused."
    )
    subscribed = serializers.BooleanField(required=False)
    data = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='Contact data; `null` deletes a key, `""` is ignored, '
        "`{value, persistent: false}` stays off the contact.",
    )


class TrackResultSerializer(serializers.Serializer):
    contact = serializers.UUIDField()
    event = serializers.UUIDField()
    timestamp = serializers.DateTimeField()


class TrackResponse(serializers.Serializer):
    success = serializers.BooleanField()
    data = TrackResultSerializer()


class TrackBatchRequest(serializers.Serializer):
    events = TrackRequest(
        many=True, help_text="1 to 500 track bodies; the whole body at most 500 KB."
    )


class TrackBatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    success = serializers.BooleanField()
    data = TrackResultSerializer(required=False)
    errors = FieldErrorSerializer(many=True, required=False)


class TrackBatchResponse(serializers.Serializer):
    success = serializers.BooleanField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = TrackBatchItemSerializer(many=True)


class ContactEmailSerializer(serializers.Serializer):
    email = serializers.EmailField()


class EventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    contactId = serializers.UUIDField(allow_null=True)
    emailId = serializers.UUIDField(allow_null=True)
    data = serializers.JSONField(allow_null=True)
    createdAt = serializers.DateTimeField()


class EventWithContactSerializer(EventSerializer):
    contact = ContactEmailSerializer(allow_null=True)


class EventListResponse(serializers.Serializer):
    events = EventWithContactSerializer(many=True)
    cursor = serializers.CharField(allow_null=True, help_text="Extension: pass back as `cursor`.")
    hasMore = serializers.BooleanField(help_text="Extension.")


class ContactEventListResponse(serializers.Serializer):
    events = EventSerializer(many=True)
    cursor = serializers.CharField(allow_null=True)
    hasMore = serializers.BooleanField()


class EventNamesResponse(serializers.Serializer):
    eventNames = serializers.ListField(child=serializers.CharField())


class EventStatsItem(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()


class NamedRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class EventDeletionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["RUNNING", "ABANDONED"],
        help_text="RUNNING while a worker holds the job's lease; ABANDONED once the lease ran "
        "out (its worker was killed): the next DELETE of the name, or a segment or workflow "
        "write naming it, finishes the job.",
    )
    deleted = serializers.IntegerField(help_text="Events deleted so far.")
    startedAt = serializers.DateTimeField(help_text="When the first DELETE of the job came in.")


class EventUsageResponse(serializers.Serializer):
    usedInSegments = NamedRefSerializer(many=True)
    usedInWorkflows = NamedRefSerializer(many=True)
    totalCount = serializers.IntegerField()
    uniqueContacts = serializers.IntegerField()
    canDelete = serializers.BooleanField(
        help_text="Not a system event, not referenced, and not being deleted by a live worker."
    )
    isSystemEvent = serializers.BooleanField(
        help_text="Extension: system events can never be deleted."
    )
    deletion = EventDeletionSerializer(
        required=False,
        help_text="Extension, present only while a delete job of the name is unfinished.",
    )


#: 409 of ``DELETE /events/<name>`` while a live worker is deleting the name already.
ERROR_409_DELETION_RUNNING = {
    409: error_doc(
        "Being deleted by a live worker already (code CONFLICT); `error.details.deletion` is the "
        "job, as in `GET /events/{eventName}/usage`."
    )
}


class DeleteEventsResponse(serializers.Serializer):
    deletedCount = serializers.IntegerField()
