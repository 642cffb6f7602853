"""What becomes of a sent email: the provider's tracking (delivered, opened, clicked, bounced,
complained) and the replies it receives, as ``email.*`` events (Plunk's SES webhook).

The inputs are small dataclasses, free of any provider's types: django-anymail's signals are
translated into them by :mod:`plunk_events.anymail_signals`, and any other source can call
:func:`apply_tracking` and :func:`record_inbound` the same way.

A tracking event locks its :class:`~plunk_events.models.Email` row (found by the provider's
message id), moves the status forward only (:data:`~plunk_events.email_models.STATUS_ORDER`),
stamps the first time of each kind and counts opens and clicks, then records the event in the
same transaction. A permanent bounce or a complaint also unsubscribes the email's contact and,
unlike Plunk, records ``contact.unsubscribed`` with ``{reason, emailId}`` so workflows and
segments can react. The events take the path of every event: :func:`.events.insert_events`,
then :func:`.dispatch.events_recorded` (workflows, waits, segments after the commit), and the
``event_tracked`` signal after the commit.
"""

from __future__ import annotations

import html
import logging
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import strip_tags

from ..constants import CONTACT_UNSUBSCRIBED, EMAIL_MAX_LENGTH
from ..email_models import STATUS_ORDER, Email
from ..ids import uuid7
from ..models import Contact, Event
from .conditions import iso_ms
from .contacts import (
    ContactState,
    save_contacts_and_events,
    send_signals_on_commit,
    upsert_contact_rows,
)
from .db import db_for_write
from .dispatch import events_recorded
from .events import insert_events
from .reevaluation import contacts_changed

logger = logging.getLogger(__name__)


class Kind(StrEnum):
    """A tracking event's kind; the event recorded is ``email.<kind>``."""

    DELIVERY = "delivery"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"


PERMANENT, TRANSIENT = "Permanent", "Transient"
EMAIL_RECEIVED = "email.received"
#: Characters of an inbound message's text kept in ``email.received``'s ``body``.
INBOUND_BODY_MAX_CHARS = 20_000


@dataclass(frozen=True)
class TrackingEvent:
    """One report of the provider about a message it sent."""

    kind: Kind
    #: The provider's id of the message, as the Email row stores it (``<>`` are ignored).
    message_id: str
    #: When it happened, by the provider's clock; now when unknown.
    at: datetime | None = None
    #: The link clicked (``CLICK``).
    link: str | None = None
    #: ``BOUNCE``: False for a transient (soft) bounce, which changes nothing but is recorded.
    permanent: bool = True


@dataclass(frozen=True)
class Recorded:
    """What a tracking event or an inbound message wrote."""

    email_id: uuid.UUID
    contact_id: uuid.UUID
    event_ids: list[uuid.UUID]
    #: The contact was subscribed and is not any more (a permanent bounce or a complaint).
    unsubscribed: bool = False


#: C0 controls but tab and line breaks, and DEL: what a stored text keeps out (PostgreSQL
#: refuses NUL in text and jsonb; the rest are noise from decoded headers).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str | None) -> str:
    """A provider's or a sender's header text as stored: no control characters (tabs and line
    breaks are spaces). Anyone can mail us, and RFC 2047 words decode to any character."""
    return _LINE_CONTROL.sub(lambda m: " " if m.group(0) in "\t\r\n" else "", text or "")


def message_id_forms(message_id: str) -> list[str]:
    """The stored forms a provider's id may match: as given and without its angle brackets.
    None for an id with control characters, which no stored id has (nor can, on PostgreSQL)."""
    raw = message_id.strip()
    if _LINE_CONTROL.search(raw):
        return []
    return list(dict.fromkeys(form for form in (raw, raw.strip("<>").strip()) if form))


def base_data(email: Email) -> dict:
    """The fields every ``email.*`` event of a sent email carries (Plunk's "base")."""
    return {
        "subject": email.subject,
        "from": email.from_email,
        "fromName": email.from_name or None,
        "messageId": email.message_id,
        "emailId": str(email.id),
        "templateId": str(email.template_id) if email.template_id else None,
        "campaignId": None,
        "sourceType": email.source,
    }


def _apply_to_email(email: Email, event: TrackingEvent, at: datetime) -> tuple[dict, list[str]]:
    """Move the locked row on by one event; return the event's own data and the changed fields."""
    changed: list[str] = []

    def first(field_name: str) -> datetime:
        if getattr(email, field_name) is None:
            setattr(email, field_name, at)
            changed.append(field_name)
        return getattr(email, field_name)

    def advance(status: str) -> None:
        # FAILED is outside the order: a report that it did go out moves it on.
        if STATUS_ORDER[status] > STATUS_ORDER.get(email.status, -1):
            email.status = status
            changed.append("status")

    if event.kind == Kind.DELIVERY:
        advance(Email.Status.DELIVERED)
        return {"deliveredAt": iso_ms(first("delivered_at"))}, changed
    if event.kind == Kind.OPEN:
        is_first = email.opens == 0
        email.opens += 1
        changed.append("opens")
        advance(Email.Status.OPENED)
        opened_at = iso_ms(first("opened_at"))
        return {"openedAt": opened_at, "opens": email.opens, "isFirstOpen": is_first}, changed
    if event.kind == Kind.CLICK:
        link = one_line(event.link) if event.link is not None else None
        is_first = email.clicks == 0
        email.clicks += 1
        changed.append("clicks")
        advance(Email.Status.CLICKED)
        clicked_at = iso_ms(first("clicked_at"))
        return {
            "link": link,
            "clickedAt": clicked_at,
            "clicks": email.clicks,
            "isFirstClick": is_first,
        }, changed
    if event.kind == Kind.BOUNCE:
        if not event.permanent:
            return {"bounceType": TRANSIENT, "transientBounce": True}, changed
        advance(Email.Status.BOUNCED)
        return {"bounceType": PERMANENT, "bouncedAt": iso_ms(first("bounced_at"))}, changed
    advance(Email.Status.COMPLAINED)
    return {"complainedAt": iso_ms(first("complained_at"))}, changed


def unsubscribes(event: TrackingEvent) -> str | None:
    """The ``reason`` of ``contact.unsubscribed`` when the event unsubscribes the contact."""
    if event.kind == Kind.BOUNCE and event.permanent:
        return "bounce"
    if event.kind == Kind.COMPLAINT:
        return "complaint"
    return None


def _unsubscribe(
    alias: str, email: Email, reason: str, now: datetime
) -> tuple[ContactState, Event] | None:
    """Unsubscribe the email's contact (locked), with its ``contact.unsubscribed`` event; None
    when it already was unsubscribed.

    Only the contact's own address counts: a bounce or complaint of a SEND_EMAIL step's custom
    recipient (or of an address the contact has since changed) says nothing about the contact.
    """
    contact = Contact.objects.using(alias).select_for_update().get(pk=email.contact_id)
    if not contact.subscribed or contact.email != email.to_email.strip().lower():
        return None
    state = ContactState(
        contact.id,
        contact.project_id,
        contact.email,
        subscribed=False,
        data=contact.data,
        created=False,
        previous_subscribed=True,
        dirty=True,
    )
    event = Event(
        id=uuid7(),
        project_id=email.project_id,
        contact_id=contact.id,
        name=CONTACT_UNSUBSCRIBED,
        data={"reason": reason, "emailId": str(email.id)},
        email_id=email.id,
        created_at=now,
    )
    return state, event


def _state(contact: Contact) -> ContactState:
    """An unchanged contact, as :func:`.contacts.send_signals_on_commit` names it."""
    return ContactState(
        contact.id, contact.project_id, contact.email, contact.subscribed, contact.data, False
    )


def apply_tracking(event: TrackingEvent) -> Recorded | None:
    """Apply one tracking event to its email and record ``email.<kind>``; None (and nothing
    written) when no email has that message id."""
    forms = message_id_forms(event.message_id or "")
    if not forms:
        logger.info("Tracking event %s without a usable message id: ignored", event.kind)
        return None
    alias = db_for_write()
    with transaction.atomic(using=alias):
        email = (
            Email.objects.using(alias)
            .select_for_update(of=("self",))
            .select_related("project", "contact")
            .filter(message_id__in=forms)
            .order_by("created_at")
            .first()
        )
        if email is None:
            logger.info("Tracking event %s for unknown message id %r: ignored", event.kind, forms)
            return None
        now = timezone.now()
        own_data, changed = _apply_to_email(email, event, event.at or now)
        if changed:
            email.save(using=alias, update_fields=[*changed, "updated_at"])
        recorded = Event(
            id=uuid7(),
            project_id=email.project_id,
            contact_id=email.contact_id,
            name=f"email.{event.kind}",
            data={**base_data(email), **own_data},
            email_id=email.id,
            created_at=now,
        )
        reason = unsubscribes(event)
        unsubscribing = _unsubscribe(alias, email, reason, now) if reason else None
        if unsubscribing is None:
            insert_events(connections[alias], [recorded])
            events_recorded(email.project, using=alias)
            send_signals_on_commit(alias, [_state(email.contact)], [recorded])
            return Recorded(email.id, email.contact_id, [recorded.id])
        contact, unsubscribed = unsubscribing
        save_contacts_and_events(alias, [contact], [recorded, unsubscribed])
        send_signals_on_commit(alias, [contact], [recorded, unsubscribed])
        contacts_changed(email.project, [contact.id], using=alias)  # nudges the dispatcher too
    return Recorded(email.id, email.contact_id, [recorded.id, unsubscribed.id], unsubscribed=True)


# ---------------------------------------------------------------------------------------------
# Inbound


@dataclass(frozen=True)
class InboundMessage:
    """A message received by the provider (a reply, in the cases we can place)."""

    #: The sender's address (From).
    sender: str
    #: The From header as written (``Ann <ann@example.com>``).
    sender_header: str = ""
    #: The address it was delivered to (the envelope recipient, else the first To).
    to: str = ""
    #: Every To and Cc address.
    recipients: list[str] = field(default_factory=list)
    subject: str = ""
    #: Its own Message-ID (or the provider's id when it has none).
    message_id: str | None = None
    #: Message ids it answers: In-Reply-To first, then References from the newest.
    replies_to: list[str] = field(default_factory=list)
    at: datetime | None = None
    text: str | None = None
    html: str | None = None
    spam_detected: bool | None = None
    spam_score: float | None = None


_BLANK_LINES = re.compile(r"\n{3,}")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


def message_ids_in(header: str | None) -> list[str]:
    """The ids of an In-Reply-To or References header, in their order, without ``<>``."""
    if not header:
        return []
    found = _MESSAGE_ID.findall(header)
    return found or [part.strip("<>") for part in header.split() if part.strip("<>")]


def _candidates(replies_to: list[str]) -> list[str]:
    """The message ids to look up, by priority: each id as written and, for providers that store
    their own id as the local part of the Message-ID they set (``<id@…>``), its part before ``@``."""
    out: list[str] = []
    for raw in replies_to:
        bare = raw.strip().strip("<>").strip()
        if _LINE_CONTROL.search(bare):
            continue
        out += [bare, bare.split("@", 1)[0]] if "@" in bare else [bare]
    return [c for c in dict.fromkeys(out) if c]


def find_replied_email(replies_to: list[str], using: str | None = None) -> Email | None:
    """The sent email an inbound message answers: the first of its referenced ids (by
    :func:`_candidates`' priority) that is a sent email's message id, or the email's own id (the
    local part of the Message-ID :mod:`.email_send` sets)."""
    candidates = _candidates(replies_to)
    if not candidates:
        return None
    own_ids = [c for c in candidates if _is_uuid(c)]
    emails = (
        Email.objects.using(using)
        .select_related("project")
        .filter(Q(message_id__in=candidates) | Q(pk__in=own_ids))
        .exclude(sent_at=None)
    )
    by_id = {}
    for email in emails.order_by("created_at"):
        by_id[str(email.pk)] = email
        by_id[email.message_id] = email
    return next((by_id[c] for c in candidates if c in by_id), None)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def sanitised_body(message: InboundMessage) -> str:
    """Plain text of the message: the text part, else the HTML without its tags; no control
    characters (PostgreSQL's jsonb refuses NUL), at most :data:`INBOUND_BODY_MAX_CHARS`."""
    text = message.text
    if not (text and text.strip()) and message.html:
        text = html.unescape(strip_tags(message.html))
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _BLANK_LINES.sub("\n\n", _CONTROL.sub("", text)).strip()
    return text[:INBOUND_BODY_MAX_CHARS]


def received_data(message: InboundMessage, now: datetime) -> dict:
    """``email.received``'s data: Plunk's fields that a provider-neutral message can fill."""
    body = sanitised_body(message)
    data = {
        "messageId": one_line(message.message_id).strip().strip("<>") or None,
        "from": message.sender,
        "fromHeader": one_line(message.sender_header or message.sender),
        "to": one_line(message.to) or None,
        "subject": one_line(message.subject),
        "timestamp": iso_ms(message.at or now),
        "recipients": [one_line(address) for address in message.recipients],
        "hasContent": bool(body),
        "body": body,
    }
    if message.spam_detected is not None:
        data["spamVerdict"] = "FAIL" if message.spam_detected else "PASS"
    score = _finite_number(message.spam_score)
    if score is not None:
        data["spamScore"] = score
    return data


def _finite_number(value) -> float | int | None:
    """A spam score as JSON can hold it: a finite number (or a numeric string), else None.
    Providers pass the score through from a header; JSON has no NaN and PostgreSQL refuses it."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return value if math.isfinite(value) else None


def _upsert_sender(connection, project_id, email: str, now) -> ContactState:
    """The sender as a contact of the project: an existing one keeps its subscription, a new
    one starts unsubscribed (a reply is no consent to marketing mail; as ``/v1/send``)."""
    changes = [(email, None, None)]
    return upsert_contact_rows(connection, project_id, changes, now, new_subscribed=False)[email]


def record_inbound(message: InboundMessage) -> Recorded | None:
    """Record ``email.received`` for a reply to a sent email, in that email's project, for the
    sender (upserted as a contact); None (and nothing written) when it answers none of ours."""
    sender = (message.sender or "").strip().lower()
    if (
        not sender
        or "@" not in sender
        or len(sender) > EMAIL_MAX_LENGTH
        or _LINE_CONTROL.search(sender)
    ):
        logger.info("Inbound message without a usable sender (%r): ignored", message.sender)
        return None
    alias = db_for_write()
    replied = find_replied_email(message.replies_to, using=alias)
    if replied is None:
        logger.info(
            "Inbound message from %s answers no sent email (%r): ignored",
            sender,
            message.replies_to,
        )
        return None
    with transaction.atomic(using=alias):
        now = timezone.now()
        contact = _upsert_sender(connections[alias], replied.project_id, sender, now)
        received = Event(
            id=uuid7(),
            project_id=replied.project_id,
            contact_id=contact.id,
            name=EMAIL_RECEIVED,
            data=received_data(replace(message, sender=sender), now),
            email_id=replied.id,
            created_at=now,
        )
        save_contacts_and_events(alias, [contact], [received])
        events_recorded(replied.project, using=alias)
        send_signals_on_commit(alias, [contact], [received])
    return Recorded(replied.id, contact.id, [received.id])
