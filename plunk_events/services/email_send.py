"""Sending an email: queued in the caller's transaction, handed to Django's email system by a task.

:func:`queue_email` renders the message at once (later data changes do not alter it) and writes
the :class:`~plunk_events.models.Email` ``PENDING``; the ``send_email`` task runs :func:`deliver`
once that commits. Nothing talks to a mail server inside a request or a workflow step's
transaction. :func:`deliver` builds the message and sends it with the host's ``EMAIL_BACKEND``
(SMTP, console, django-anymail's ESPs...), then moves the email to SENT with one conditional
update and, only if that update won, records ``email.sent`` through the same store path as
every event (so it counts in names and stats, starts workflows, resumes waits and moves
segments). A retried or duplicated task finds the email no longer PENDING and does nothing.

Marketing mail to an unsubscribed contact is not sent: the email is FAILED "Contact is
unsubscribed", checked when queued and again when delivered (the contact may have unsubscribed
in between). Transactional mail is sent whatever the subscription.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
from dataclasses import dataclass, field
from email import encoders
from email.mime.base import MIMEBase
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.utils import DNS_NAME
from django.db import connections, transaction
from django.utils import timezone

from .. import signals
from ..conf import conf
from ..email_models import Email, Template
from ..ids import uuid7
from ..models import Contact, Event
from . import email_links, email_render, email_tracking
from .conditions import iso_ms
from .db import db_for_write
from .dispatch import events_recorded
from .events import insert_events

logger = logging.getLogger(__name__)

EMAIL_SENT = "email.sent"
UNSUBSCRIBED = "Contact is unsubscribed"

Status = Email.Status


@dataclass
class Message:
    """What to send, before rendering: a template's fields, or ``/v1/send``'s own."""

    subject: str
    body: str
    body_format: str = Template.BodyFormat.HTML
    #: "" → ``PLUNK_EVENTS["DEFAULT_FROM_EMAIL"]``, else Django's ``DEFAULT_FROM_EMAIL``.
    from_email: str = ""
    from_name: str = ""
    reply_to: str = ""
    headers: dict = field(default_factory=dict)
    #: ``[{filename, content (base64), contentType, contentId?, disposition?}]``
    attachments: list = field(default_factory=list)
    #: Marketing mail goes to subscribed contacts only and carries List-Unsubscribe headers.
    marketing: bool = False
    template: Template | None = None


def message_from_template(template: Template, **overrides: Any) -> Message:
    """The template's subject, body, sender and type; ``overrides`` replace any of them."""
    message = Message(
        subject=template.subject,
        body=template.body,
        body_format=template.body_format,
        from_email=template.from_email or "",
        from_name=template.from_name or "",
        reply_to=template.reply_to or "",
        marketing=template.is_marketing,
        template=template,
    )
    return dataclasses.replace(message, **overrides)


def sender(from_email: str = "", from_name: str = "") -> tuple[str, str]:
    """``(address, display name)`` of the sender: the message's, else the default sender
    (``PLUNK_EVENTS["DEFAULT_FROM_EMAIL"]``, else Django's ``DEFAULT_FROM_EMAIL``), which may
    be written ``"Name <address>"``."""
    if from_email:
        return from_email, from_name
    default_name, address = parseaddr(conf.DEFAULT_FROM_EMAIL or settings.DEFAULT_FROM_EMAIL)
    return address, from_name or default_name


def _to_contact(contact: Any, to_email: str) -> bool:
    """Whether the message goes to the contact itself (not a SEND_EMAIL step's custom
    recipient): only then do its subscription and unsubscribe links apply."""
    return to_email.lower() == (contact.email or "").lower()


def queue_email(
    project,
    contact,
    message: Message,
    *,
    source: str,
    variables: dict | None = None,
    context: Any = None,
    to_email: str | None = None,
    to_name: str = "",
    step_execution=None,
    using: str | None = None,
) -> Email:
    """Render ``message`` for ``contact`` now and write its Email PENDING in the caller's
    transaction (which must be open on ``using``); ``send_email`` is enqueued when it commits.

    ``contact`` is a Contact or a ContactState. ``variables`` are the send's ``data`` values
    (``{value, persistent}`` wrappers are unwrapped), ``context`` a workflow's context (its
    ``event``). ``to_email`` defaults to the contact's address. Marketing mail to an
    unsubscribed contact is written FAILED "Contact is unsubscribed" and never enqueued.
    """
    from .. import tasks

    alias = using or db_for_write()
    if not connections[alias].in_atomic_block:
        raise RuntimeError("queue_email must run inside the transaction that asked for the email")
    to_email = to_email or contact.email
    scope = email_render.contact_variables(contact, variables, context)
    rendered = email_render.render_message(
        message.subject, message.body, message.body_format, scope
    )
    refused = message.marketing and not contact.subscribed and _to_contact(contact, to_email)
    from_email, from_name = sender(message.from_email, message.from_name or "")
    email = Email.objects.using(alias).create(
        project_id=project.pk,
        contact_id=contact.id,
        template=message.template,
        step_execution=step_execution,
        source=source,
        marketing=message.marketing,
        to_email=to_email,
        to_name=to_name or "",
        from_email=from_email,
        from_name=from_name,
        reply_to=message.reply_to or "",
        subject=rendered.subject,
        body=rendered.html,
        headers=dict(message.headers or {}),
        attachments=list(message.attachments or []),
        status=Status.FAILED if refused else Status.PENDING,
        error=UNSUBSCRIBED if refused else "",
    )
    if not refused:
        tasks.enqueue_on_commit(tasks.send_email, str(email.pk), using=alias)
    return email


# ---------------------------------------------------------------------------------------------
# Delivery


def _attachment(item: dict) -> MIMEBase | tuple[str, bytes, str]:
    """A ``/v1/send`` attachment: base64 content decoded; an inline one (``contentId``) as a
    MIME part with its Content-ID, which the HTML refers to as ``cid:<contentId>``."""
    content = base64.b64decode(item.get("content") or "", validate=True)
    filename = item.get("filename") or "attachment"
    content_type = item.get("contentType") or "application/octet-stream"
    content_id = item.get("contentId")
    if not content_id and item.get("disposition") != "inline":
        return filename, content, content_type
    maintype, _, subtype = content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(content)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "inline", filename=filename)
    if content_id:
        part.add_header("Content-ID", f"<{content_id.strip('<>')}>")
    return part


def ascii_address(address: str) -> str:
    """``address`` with an internationalised domain in its punycode form (``bücher.de`` →
    ``xn--bcher-kva.de``), as Django's ``sanitize_address`` sends it: :func:`formataddr`
    refuses non-ASCII addresses, and the validators accept IDN domains."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def build_message(email: Email, contact: Contact, connection=None) -> EmailMultiAlternatives:
    """The Django message of an Email: text with an HTML alternative, named sender and
    recipient, Reply-To, the stored headers, a Message-ID, List-Unsubscribe on marketing mail
    to the contact, and the attachments."""
    headers = dict(email.headers or {})
    if email.marketing and _to_contact(contact, email.to_email):
        headers.update(email_links.list_unsubscribe_headers(contact))
    if not any(name.lower() == "message-id" for name in headers):
        # The email's own id as the local part: a reply's In-Reply-To names it whatever id the
        # provider reports (email_tracking.find_replied_email).
        domain = ascii_address(email.from_email).rpartition("@")[2] or DNS_NAME.get_fqdn()
        headers["Message-ID"] = f"<{email.pk}@{domain}>"
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email_render.plain_text(email.body),
        from_email=formataddr((email.from_name, ascii_address(email.from_email))),
        to=[formataddr((email.to_name, ascii_address(email.to_email)))],
        reply_to=[email.reply_to] if email.reply_to else None,
        headers=headers,
        connection=connection,
    )
    message.attach_alternative(email.body, "text/html")
    for item in email.attachments or []:
        attachment = _attachment(item)
        if isinstance(attachment, MIMEBase):
            message.attach(attachment)
        else:
            message.attach(*attachment)
    return message


def provider_message_id(message: EmailMultiAlternatives) -> str:
    """django-anymail's ``message_id`` when the backend is an ESP's, else our Message-ID."""
    status = getattr(message, "anymail_status", None)
    provider_id = getattr(status, "message_id", None)
    if isinstance(provider_id, set | frozenset | list | tuple):
        provider_id = next(iter(provider_id)) if len(provider_id) == 1 else None
    if provider_id is None or provider_id == "":
        headers = {name.lower(): value for name, value in message.extra_headers.items()}
        provider_id = headers["message-id"].strip().strip("<>")
    return str(provider_id)[:255]


def _fail(alias: str, email_id: Any, error: str) -> bool:
    return bool(
        Email.objects.using(alias)
        .filter(pk=email_id, status=Status.PENDING)
        .update(status=Status.FAILED, error=error[:5000], updated_at=timezone.now())
    )


def sent_event(email: Email, sent_at) -> Event:
    """``email.sent`` with Plunk's data fields (plunk-engine.md §3.1) and the email's id."""
    return Event(
        id=uuid7(),
        project_id=email.project_id,
        contact_id=email.contact_id,
        name=EMAIL_SENT,
        email_id=email.pk,
        created_at=sent_at,
        data={**email_tracking.base_data(email), "sentAt": iso_ms(sent_at)},
    )


def _record_sent(alias: str, email: Email, message_id: str) -> bool:
    """SENT, with the provider's id and ``email.sent``, if the email is still PENDING."""
    with transaction.atomic(using=alias):
        now = timezone.now()
        won = (
            Email.objects.using(alias)
            .filter(pk=email.pk, status=Status.PENDING)
            .update(status=Status.SENT, sent_at=now, message_id=message_id, updated_at=now)
        )
        if not won:
            return False
        email.status, email.sent_at, email.message_id = Status.SENT, now, message_id
        event = sent_event(email, now)
        insert_events(connections[alias], [event])
        events_recorded(email.project_id, using=alias)
        if signals.event_tracked.has_listeners():
            transaction.on_commit(
                lambda: signals.event_tracked.send(
                    sender=Event, event=event, contact=email.contact, created_contact=False
                ),
                using=alias,
            )
    return True


def deliver(email_id: Any) -> str | None:
    """The ``send_email`` task: send a PENDING email with the host's ``EMAIL_BACKEND``.

    Returns the status the email ends in, or None when it was not PENDING (sent or failed
    already: nothing is sent twice by a retried task). A backend error makes it FAILED with
    the error's text, and no event.
    """
    alias = db_for_write()
    email = Email.objects.using(alias).select_related("contact").filter(pk=email_id).first()
    if email is None or email.status != Status.PENDING:
        return None
    contact = email.contact
    if email.marketing and not contact.subscribed and _to_contact(contact, email.to_email):
        return Status.FAILED if _fail(alias, email.pk, UNSUBSCRIBED) else None
    try:
        message = build_message(email, contact, connection=get_connection())
    except (binascii.Error, ValueError) as exc:
        return Status.FAILED if _fail(alias, email.pk, f"Invalid message: {exc}") else None
    try:
        accepted = message.send()
    except Exception as exc:  # whatever the backend raises: SMTP, network, the ESP's API
        logger.warning("Email %s was not sent: %s", email.pk, exc, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
        return Status.FAILED if _fail(alias, email.pk, error) else None
    if not accepted:
        return Status.FAILED if _fail(alias, email.pk, "The backend sent nothing") else None
    return Status.SENT if _record_sent(alias, email, provider_message_id(message)) else None
