"""``POST /v1/send``: thin over :mod:`plunk_events.services.sending`.

The serializers below only describe the request and response for the OpenAPI schema; the body
is validated by :func:`~plunk_events.services.sending.parse_send`, which names every bad field
in Plunk's zod style.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.views import APIView

from ..conf import conf
from ..services import sending
from . import schema
from .formatting import iso_timestamp
from .mixins import PlunkAPIMixin
from .views import IdempotentPostMixin, checked_body_size

_ADDRESS = {"type": "string", "format": "email"}
_NAMED_ADDRESS = {
    "type": "object",
    "required": ["email"],
    "properties": {"name": {"type": "string", "maxLength": 100}, "email": _ADDRESS},
}


@extend_schema_field(
    {
        "oneOf": [
            _ADDRESS,
            _NAMED_ADDRESS,
            {
                "type": "array",
                "items": {"oneOf": [_ADDRESS, _NAMED_ADDRESS]},
                "minItems": 1,
                "maxItems": sending.MAX_RECIPIENTS,
            },
        ]
    }  # fmt: skip
)
class RecipientsField(serializers.JSONField):
    pass


@extend_schema_field({"oneOf": [_ADDRESS, _NAMED_ADDRESS]})
class SenderField(serializers.JSONField):
    pass


class SendAttachmentSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255, help_text="No line breaks or double quotes.")
    content = serializers.CharField(help_text="Base64 (line breaks and missing padding are fine).")
    contentType = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
        max_length=255,
        help_text="`type/subtype`, e.g. `application/pdf`.",
    )
    contentId = serializers.CharField(
        required=False,
        max_length=255,
        help_text="Required with `disposition: inline`; the body refers to it as `cid:<contentId>`.",
    )
    disposition = serializers.ChoiceField(
        choices=list(sending.DISPOSITIONS), required=False, default="attachment"
    )


class SendRequest(serializers.Serializer):
    to = RecipientsField(
        help_text="An address, `{name, email}`, or an array of either (at most "
        f"{sending.MAX_RECIPIENTS}); one contact upsert and one email per entry."
    )
    subject = serializers.CharField(
        required=False, max_length=998, help_text="Required without `template`; one line."
    )
    body = serializers.CharField(required=False, help_text="HTML; required without `template`.")
    template = serializers.UUIDField(
        required=False,
        help_text="A template of the project; `subject`, `body`, `from`, `name` and `reply` "
        "override its fields.",
    )
    # ``from`` is a Python keyword: declared below.
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="Deprecated sender name, used when `from` has none.",
    )
    reply = serializers.EmailField(required=False, help_text="Reply-To address.")
    headers = serializers.DictField(
        child=serializers.CharField(max_length=998, allow_blank=True),
        required=False,
        help_text="Extra headers: names are RFC 5322 field names, values one line. From, To, "
        "Cc, Bcc, Reply-To, Sender, Subject, Date, Message-ID, MIME-Version, Content-Type, "
        "Content-Transfer-Encoding, Content-Disposition and X-Plunk-* are refused.",
    )
    data = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="Template variables, merged into each recipient's contact as `/v1/track` "
        'does (`null` deletes a key, `""` is ignored, reserved keys are dropped); '
        "`{value, persistent: false}` renders but is not stored.",
    )
    subscribed = serializers.BooleanField(
        required=False,
        help_text="New contacts are unsubscribed unless this is true; existing ones keep "
        "their state unless it is sent.",
    )
    attachments = SendAttachmentSerializer(
        many=True,
        required=False,
        max_length=sending.MAX_ATTACHMENTS,
        help_text="At most 10, 10 MB decoded in total.",
    )


SendRequest._declared_fields["from"] = SenderField(
    required=False,
    help_text="Sender address or `{name, email}`; default: the template's, else the "
    "`DEFAULT_FROM_EMAIL` setting of `PLUNK_EVENTS`, else Django's.",
)


class SendContactSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()


class SendEmailSerializer(serializers.Serializer):
    contact = SendContactSerializer()
    email = serializers.UUIDField(
        help_text="The email's id; its `email.*` events carry it as `emailId`."
    )


class SendResultSerializer(serializers.Serializer):
    emails = SendEmailSerializer(many=True)
    timestamp = serializers.DateTimeField()


class SendResponse(serializers.Serializer):
    success = serializers.BooleanField()
    data = SendResultSerializer()


SEND_ERRORS = {
    **schema.ERRORS_401_409_422,
    401: schema.error_doc("Missing or invalid secret key"),
    404: schema.error_doc("`template` is not a template of this project"),
    413: schema.error_doc("Body over `SEND_MAX_BYTES` (20 MB by default)"),
    422: schema.error_doc(
        "Validation failed; `errors[]` names each field by its path. Nothing was written or sent."
    ),
}


def send_payload(result: sending.SendResult) -> dict:
    return {
        "success": True,
        "data": {
            "emails": [
                {
                    "contact": {"id": str(queued.contact_id), "email": queued.contact_email},
                    "email": str(queued.email_id),
                }
                for queued in result.emails
            ],
            "timestamp": iso_timestamp(result.timestamp),
        },
    }


class SendView(IdempotentPostMixin, PlunkAPIMixin, APIView):
    """Send a transactional email to one or more recipients (Plunk ``POST /v1/send``)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        size = checked_body_size(request, conf.SEND_MAX_BYTES)
        django_request = request._request
        if size > 0 and not django_request._read_started:
            # Django's ``request.body`` (which DRF's JSON parsing and the Idempotency-Key hash
            # read) stops at DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB by default: a site-wide limit for
            # forms, below Plunk's 10 MB of attachments. Read the body here, under our own limit.
            django_request._body = django_request.read(size)

    @extend_schema(
        operation_id="sendEmail",
        summary="Send transactional email",
        description="Upserts each recipient's contact (new contacts unsubscribed unless "
        "`subscribed: true`) and queues one email per recipient, all in one transaction; the "
        "emails are handed to the site's `EMAIL_BACKEND` by a task after the commit, and each "
        "sent one records `email.sent`. Sent whatever the contact's subscription. No domain "
        "verification (no 403) and no billing limit (no 429 other than the rate limit).",
        request=SendRequest,
        parameters=[schema.IDEMPOTENCY_PARAMETER, schema.REPLAYED_HEADER],
        responses={200: SendResponse, **SEND_ERRORS},
        tags=["Public API"],
    )
    def post(self, request):
        key = self.check_idempotency_key(request)
        item = sending.parse_send(request.data)
        replay = self.replayable(send_payload)
        result = sending.send_transactional(
            self.project, item, idempotency_key=key, path=request.path, replay=replay
        )
        return self.answer(send_payload, result, replay)
