"""``POST /v1/send``: Plunk's transactional send, validated whole, then written in one transaction.

:func:`parse_send` checks the body, every recipient and attachment included, and names each bad
field (a 422 writes nothing). :func:`send_transactional` then, in one transaction: looks the
template up (404), claims the Idempotency-Key, upserts the recipients' contacts (a new contact
is UNSUBSCRIBED unless ``subscribed`` says otherwise; an existing one keeps its state, and a flip
records ``contact.subscribed``/``contact.unsubscribed``), applies the data merge rule of track
(:mod:`.contact_data`; the recipient's ``name`` is stored as ``data.name``, as Plunk does), and
queues one email per recipient (:func:`.email_send.queue_email`), which a task hands to
Django's ``EMAIL_BACKEND`` after the commit. The mail is transactional: it is sent whatever the
contact's subscription, and carries no List-Unsubscribe headers.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.db import connections, transaction
from django.utils import timezone

from ..constants import EMAIL_MAX_LENGTH
from ..email_models import SUBJECT_MAX_LENGTH, Email, Template
from ..models import Project
from . import idempotency
from .contact_data import merge_contact_data
from .contacts import (
    ContactState,
    save_contacts_and_events,
    send_signals_on_commit,
    subscription_event,
    upsert_contact_rows,
)
from .db import db_for_write
from .email_render import LINE_SEPARATORS
from .email_send import Message, queue_email
from .errors import FieldErrorList, NotFound, ValidationFailed
from .reevaluation import contacts_changed
from .validation import (
    MISSING,
    check_data,
    check_email,
    check_subscribed,
    enum_message,
    type_error,
)

#: Recipients of one request (Plunk has no cap; each is a contact upsert and a rendered email
#: inside the request's transaction).
MAX_RECIPIENTS = 100
#: Plunk's defaults (``MAX_ATTACHMENTS_COUNT``, ``MAX_ATTACHMENT_SIZE_MB``).
MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
#: Display names (sender and recipient) fit ``Email.from_name``/``to_name``.
NAME_MAX_LENGTH = 100
#: RFC 5322's line limit, Plunk's limit of a header value.
HEADER_VALUE_MAX_LENGTH = 998
HEADER_NAME_MAX_LENGTH = 255
ATTACHMENT_TEXT_MAX_LENGTH = 255
DISPOSITIONS = ("attachment", "inline")

#: Headers the message gets from the request's fields or from the mail system; set through
#: ``headers`` they would contradict the envelope or break the MIME structure.
PROTECTED_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)
#: Plunk's internal routing headers (e.g. ``X-Plunk-Recipient-Override`` of SEND_EMAIL steps).
INTERNAL_HEADER_PREFIX = "x-plunk-"

#: zod's message for a bad ``from`` in Plunk's schema.
FROM_MESSAGE = (
    'Invalid "from" field. Expected a valid email string (e.g., "hello@example.com") or an object '
    'with an email field and optional name (e.g., {email: "hello@example.com", name: "My App"})'
)
CONTENT_REQUIRED_MESSAGE = "Either template ID or both subject and body are required"

#: One header line: no CR, LF, nor another separator Python's email package breaks lines at.
_NO_LINE_BREAK = re.compile(f"^[^{LINE_SEPARATORS}]*$")
#: RFC 5322 field name: printable ASCII except the colon.
_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_FILENAME = re.compile(r'^[^\r\n"]+$')
_CONTENT_ID = re.compile(r"^[^<>\r\n]+$")
#: RFC 6838 ``type/subtype``: what Django's attach() can split and put in a Content-Type.
_MIME_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
_WHITESPACE = re.compile(r"\s+")
_address_validator = EmailValidator()


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""


@dataclass(frozen=True)
class SendInput:
    """A valid ``POST /v1/send`` body."""

    recipients: tuple[Recipient, ...]
    subject: str | None = None
    body: str | None = None
    template_id: uuid.UUID | None = None
    from_email: str | None = None
    #: ``from.name``, else the deprecated top-level ``name``.
    from_name: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: dict | None = None
    subscribed: bool | None = None
    #: ``[{filename, content (base64, normalised), contentType, disposition[, contentId]}]``.
    attachments: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class QueuedEmail:
    contact_id: uuid.UUID
    contact_email: str
    email_id: uuid.UUID


@dataclass(frozen=True)
class SendResult:
    emails: list[QueuedEmail]
    timestamp: datetime


# ---------------------------------------------------------------------------------------------
# Validation


def _string(
    errors: FieldErrorList,
    value: Any,
    field_name: str,
    *,
    max_length: int | None = None,
    pattern: re.Pattern | None = None,
    pattern_message: str = "",
    allow_empty: bool = False,
) -> str | None:
    """A string within zod's ``min(1)``/``max(n)``/``regex`` rules, else None and an error."""
    if not isinstance(value, str):
        type_error(errors, field_name, "string", value)
        return None
    if not value and not allow_empty:
        errors.add(field_name, "String must contain at least 1 character(s)", "too_small")
        return None
    if max_length is not None and len(value) > max_length:
        errors.add(field_name, f"String must contain at most {max_length} character(s)", "too_big")
        return None
    if pattern is not None and not pattern.match(value):
        errors.add(field_name, pattern_message, "invalid_string")
        return None
    return value


def _display_name(errors: FieldErrorList, value: Any, field_name: str) -> str | None:
    return _string(
        errors,
        value,
        field_name,
        max_length=NAME_MAX_LENGTH,
        pattern=_NO_LINE_BREAK,
        pattern_message="Name contains invalid characters",
        allow_empty=True,
    )


def _address(value: Any) -> str | None:
    """A sender or reply-to address, trimmed, case kept; None if it is not an email."""
    if not isinstance(value, str):
        return None
    address = value.strip()
    if len(address) > EMAIL_MAX_LENGTH:
        return None
    try:
        _address_validator(address)
    except DjangoValidationError:
        return None
    return address


def _recipient(errors: FieldErrorList, value: Any, prefix: str) -> Recipient | None:
    if isinstance(value, str):
        email = check_email(errors, value, prefix)
        return Recipient(email) if email else None
    if not isinstance(value, dict):
        type_error(errors, prefix, "string or object", value)
        return None
    email = check_email(errors, value.get("email", MISSING), f"{prefix}.email")
    name = ""
    if "name" in value:
        name = _display_name(errors, value["name"], f"{prefix}.name")
    return Recipient(email, name) if email and name is not None else None


def _recipients(errors: FieldErrorList, value: Any) -> tuple[Recipient, ...]:
    if value is MISSING:
        type_error(errors, "to", "string, object or array", value)
        return ()
    if not isinstance(value, list):
        recipient = _recipient(errors, value, "to")
        return (recipient,) if recipient else ()
    if not value:
        errors.add("to", "Array must contain at least 1 element(s)", "too_small")
        return ()
    if len(value) > MAX_RECIPIENTS:
        errors.add("to", f"Array must contain at most {MAX_RECIPIENTS} element(s)", "too_big")
        return ()
    recipients = [_recipient(errors, item, f"to.{index}") for index, item in enumerate(value)]
    return tuple(r for r in recipients if r is not None)


def _sender(errors: FieldErrorList, value: Any, name: Any) -> tuple[str | None, str | None]:
    """``(from_email, from_name)``: ``from`` as a string or ``{email, name?}``; the deprecated
    top-level ``name`` is the fallback name (Plunk: ``from.name || name``)."""
    fallback = None if name is MISSING else _display_name(errors, name, "name")
    if value is MISSING:
        return None, fallback or None
    own_name = None
    if isinstance(value, dict):
        address = _address(value.get("email"))
        if "name" in value:
            own_name = _display_name(errors, value["name"], "from.name")
    else:
        address = _address(value)
    if address is None:
        errors.add("from", FROM_MESSAGE, "invalid_union")
    return address, own_name or fallback or None


def _headers(errors: FieldErrorList, value: Any) -> dict[str, str]:
    if value is MISSING:
        return {}
    if not isinstance(value, dict):
        type_error(errors, "headers", "object", value)
        return {}
    headers = {}
    for name, header_value in value.items():
        path = f"headers.{name}"
        lowered = name.lower()
        if not _HEADER_NAME.match(name) or len(name) > HEADER_NAME_MAX_LENGTH:
            errors.add(
                path,
                "Header name must be 1-255 printable ASCII characters without spaces or colons",
                "invalid_string",
            )
        elif lowered in PROTECTED_HEADERS or lowered.startswith(INTERNAL_HEADER_PREFIX):
            errors.add(
                path,
                f'Header "{name}" cannot be set: the message sets it from the request\'s fields '
                "(from, to, reply, subject) or the mail system does",
                "invalid_string",
            )
        checked = _string(
            errors,
            header_value,
            path,
            max_length=HEADER_VALUE_MAX_LENGTH,
            pattern=_NO_LINE_BREAK,
            pattern_message="Header value contains invalid characters",
            allow_empty=True,
        )
        if checked is not None:
            headers[name] = checked
    return headers


def decode_base64(content: str) -> bytes | None:
    """Standard base64 as clients send it (line breaks, missing padding), or None."""
    compact = _WHITESPACE.sub("", content)
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _attachment(errors: FieldErrorList, value: Any, prefix: str) -> tuple[dict, int] | None:
    """One attachment, normalised, and its decoded size."""
    if not isinstance(value, dict):
        type_error(errors, prefix, "object", value)
        return None
    before = len(errors)
    filename = _string(
        errors,
        value.get("filename", MISSING),
        f"{prefix}.filename",
        max_length=ATTACHMENT_TEXT_MAX_LENGTH,
        pattern=_FILENAME,
        pattern_message="Filename contains invalid characters",
    )
    content = _string(errors, value.get("content", MISSING), f"{prefix}.content")
    decoded = decode_base64(content) if content is not None else None
    if content is not None and decoded is None:
        errors.add(f"{prefix}.content", "Content must be base64-encoded", "invalid_string")
    content_type = _string(
        errors,
        value.get("contentType", MISSING),
        f"{prefix}.contentType",
        max_length=ATTACHMENT_TEXT_MAX_LENGTH,
        pattern=_MIME_TYPE,
        pattern_message="Content type must be a MIME type such as application/pdf",
    )
    content_id = None
    if value.get("contentId", MISSING) is not MISSING:
        content_id = _string(
            errors,
            value["contentId"],
            f"{prefix}.contentId",
            max_length=ATTACHMENT_TEXT_MAX_LENGTH,
            pattern=_CONTENT_ID,
            pattern_message="Content ID cannot contain <, >, \\r, or \\n",
        )
    disposition = value.get("disposition", MISSING)
    if disposition is MISSING:
        disposition = "attachment"
    elif disposition not in DISPOSITIONS:
        errors.add(
            f"{prefix}.disposition", enum_message(DISPOSITIONS, disposition), "invalid_enum_value"
        )
    if disposition == "inline" and "contentId" not in value:
        errors.add(
            f"{prefix}.contentId", "Content ID is required when disposition is inline", "custom"
        )
    if len(errors) > before:
        return None
    attachment = {
        "filename": filename,
        "content": base64.b64encode(decoded).decode("ascii"),
        "contentType": content_type,
        "disposition": disposition,
    }
    if content_id is not None:
        attachment["contentId"] = content_id
    return attachment, len(decoded)


def _attachments(errors: FieldErrorList, value: Any) -> list[dict]:
    if value is MISSING:
        return []
    if not isinstance(value, list):
        type_error(errors, "attachments", "array", value)
        return []
    if len(value) > MAX_ATTACHMENTS:
        errors.add(
            "attachments", f"Array must contain at most {MAX_ATTACHMENTS} element(s)", "too_big"
        )
        return []
    parsed = [_attachment(errors, item, f"attachments.{i}") for i, item in enumerate(value)]
    valid = [item for item in parsed if item is not None]
    if sum(size for _, size in valid) > MAX_ATTACHMENT_BYTES:
        megabytes = MAX_ATTACHMENT_BYTES // (1024 * 1024)
        errors.add("attachments", f"Total attachment size must not exceed {megabytes}MB", "custom")
    return [attachment for attachment, _ in valid]


def _template_id(errors: FieldErrorList, value: Any) -> uuid.UUID | None:
    if value is MISSING:
        return None
    if not isinstance(value, str):
        type_error(errors, "template", "string", value)
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        errors.add("template", "Invalid uuid", "invalid_string")
        return None


def parse_send(body: Any) -> SendInput:
    """Validate a ``POST /v1/send`` body; raise :class:`ValidationFailed` naming every bad field.

    Plunk's schema (``ActionSchemas.send``), plus: at most :data:`MAX_RECIPIENTS` recipients,
    names without line breaks and at most 100 characters, header names that are RFC 5322 field
    names and not one of :data:`PROTECTED_HEADERS`, base64 that decodes, and a content type
    of the form ``type/subtype``.
    """
    errors = FieldErrorList()
    if not isinstance(body, dict):
        type_error(errors, "body", "object", body)
        raise ValidationFailed(errors)
    recipients = _recipients(errors, body.get("to", MISSING))
    subject = body.get("subject", MISSING)
    if subject is not MISSING:
        subject = _string(
            errors,
            subject,
            "subject",
            max_length=SUBJECT_MAX_LENGTH,
            pattern=_NO_LINE_BREAK,
            pattern_message="Subject contains invalid characters",
        )
    content = body.get("body", MISSING)
    if content is not MISSING:
        content = _string(errors, content, "body")
    template_id = _template_id(errors, body.get("template", MISSING))
    if "template" not in body and ("subject" not in body or "body" not in body):
        errors.add("template", CONTENT_REQUIRED_MESSAGE, "custom")
    from_email, from_name = _sender(errors, body.get("from", MISSING), body.get("name", MISSING))
    reply_to = None
    if body.get("reply", MISSING) is not MISSING:
        reply_to = _address(body["reply"])
        if reply_to is None:
            if isinstance(body["reply"], str):
                errors.add("reply", "Invalid email", "invalid_string")
            else:
                type_error(errors, "reply", "string", body["reply"])
    headers = _headers(errors, body.get("headers", MISSING))
    data = check_data(errors, body.get("data", MISSING))
    subscribed = check_subscribed(errors, body.get("subscribed", MISSING))
    attachments = _attachments(errors, body.get("attachments", MISSING))
    if errors:
        raise ValidationFailed(errors)
    return SendInput(
        recipients=recipients,
        subject=subject if subject is not MISSING else None,
        body=content if content is not MISSING else None,
        template_id=template_id,
        from_email=from_email,
        from_name=from_name,
        reply_to=reply_to,
        headers=headers,
        data=data,
        subscribed=subscribed,
        attachments=attachments,
    )


# ---------------------------------------------------------------------------------------------
# Sending


def recipient_data(data: dict | None, recipient: Recipient) -> dict | None:
    """What a recipient's contact is upserted with: the send's ``data``, and the recipient's
    name as ``name`` (Plunk: ``{...data, name}`` when the name is not empty)."""
    if not recipient.name:
        return data
    return {**(data or {}), "name": recipient.name}


def compose_message(item: SendInput, template: Template | None) -> Message:
    """The message of the send: the template's fields, each replaced by the request's own
    (Plunk: ``subject || template.subject``, ...). A body from the request is HTML."""
    common = {
        "headers": dict(item.headers),
        "attachments": list(item.attachments),
        "marketing": False,  # /v1/send mail is transactional, whatever the template's type
        "template": template,
    }
    if template is None:
        return Message(
            subject=item.subject,
            body=item.body,
            body_format=Template.BodyFormat.HTML,
            from_email=item.from_email or "",
            from_name=item.from_name or "",
            reply_to=item.reply_to or "",
            **common,
        )
    return Message(
        subject=item.subject or template.subject,
        body=item.body or template.body,
        body_format=Template.BodyFormat.HTML if item.body else template.body_format,
        from_email=item.from_email or template.from_email or "",
        from_name=item.from_name or template.from_name or "",
        reply_to=item.reply_to or template.reply_to or "",
        **common,
    )


def _merged_again(state: ContactState, data: dict | None) -> ContactState:
    """The contact after a later recipient entry with the same email (Plunk upserts each entry
    in turn); the subscription was settled by the first entry."""
    merged = merge_contact_data(state.data, data)
    return ContactState(
        state.id,
        state.project_id,
        state.email,
        state.subscribed,
        merged,
        created=state.created,
        previous_subscribed=state.previous_subscribed,
        dirty=state.dirty or merged != state.data,
    )


def send_transactional(
    project: Project,
    item: SendInput,
    *,
    idempotency_key: str | None = None,
    path: str = "/v1/send",
    replay: idempotency.Replayable | None = None,
) -> SendResult:
    """Upsert the recipients' contacts and queue one email each, all in one transaction (with
    the claim of ``idempotency_key`` and, given ``replay``, the rendered response); the emails
    go to the task queue after the commit. 404 for a template of another project or none."""
    alias = db_for_write()
    timestamp = timezone.now()
    with transaction.atomic(using=alias):
        template = None
        if item.template_id is not None:
            template = Template.objects.using(alias).filter(project=project, pk=item.template_id)
            template = template.first()
            if template is None:
                raise NotFound("Template", item.template_id)
        message = compose_message(item, template)
        if idempotency_key is not None:
            idempotency.claim(alias, project, idempotency_key, path, timestamp, replay)
        entries = [(r, recipient_data(item.data, r)) for r in item.recipients]
        first: dict[str, dict | None] = {}
        for recipient, data in entries:
            first.setdefault(recipient.email, data)
        now = timezone.now()
        contacts = upsert_contact_rows(
            connections[alias],
            project.pk,
            [(email, data, item.subscribed) for email, data in first.items()],
            now,
            new_subscribed=False,
        )
        flips = [subscription_event(c, now) for c in contacts.values() if c.subscription_changed]
        per_entry, seen = [], set()
        for recipient, data in entries:
            if recipient.email in seen:
                contacts[recipient.email] = _merged_again(contacts[recipient.email], data)
            seen.add(recipient.email)
            per_entry.append(contacts[recipient.email])
        save_contacts_and_events(alias, contacts.values(), flips)
        send_signals_on_commit(alias, list(contacts.values()), [])
        contacts_changed(project, [c.id for c in contacts.values()], using=alias)
        queued = []
        for (recipient, _), contact in zip(entries, per_entry, strict=True):
            email = queue_email(
                project,
                contact,
                message,
                source=Email.Source.TRANSACTIONAL,
                variables=item.data,
                to_name=recipient.name,
                using=alias,
            )
            queued.append(QueuedEmail(contact.id, contact.email, email.pk))
        result = SendResult(queued, timestamp)
        if replay is not None and idempotency_key is not None:
            idempotency.complete(alias, project, idempotency_key, replay, result)
    return result
