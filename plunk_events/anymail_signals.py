"""django-anymail's ``tracking`` and ``inbound`` signals, turned into ``email.*`` events.

anymail is an optional extra (``plunk-events[anymail]``): its webhook views check the
provider's signature or basic auth, normalise the payload and send these signals; the receivers
here translate them into the provider-neutral inputs of :mod:`.services.email_tracking`. They
are connected by ``PlunkEventsConfig.ready()`` when anymail can be imported.

anymail event types recorded (the README lists them): ``delivered`` → ``email.delivery``,
``opened`` → ``email.open``, ``clicked`` → ``email.click``, ``bounced`` → ``email.bounce``
Permanent (Transient when the provider marks it soft), ``deferred`` → ``email.bounce``
Transient, ``complained`` → ``email.complaint``. The others (``queued``, ``sent``,
``rejected``, ``failed``, ``autoresponded``, ``unsubscribed``, ``subscribed``, ``unknown``)
are ignored.

Anyone can mail an inbound address, and a receiver's exception is a 500 that the provider
retries: headers anymail cannot parse keep what parses, and a failure a retry cannot cure is
logged and answered 200 (:func:`_record`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from email.utils import getaddresses
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import InterfaceError, OperationalError, transaction

from .services.db import db_for_write
from .services.email_tracking import (
    InboundMessage,
    Kind,
    TrackingEvent,
    apply_tracking,
    message_ids_in,
    record_inbound,
)

try:
    from anymail.exceptions import AnymailInvalidAddress
    from anymail.signals import EventType, inbound, tracking
except ImportError:  # the anymail extra is not installed: mail is sent, only email.sent recorded
    EventType = inbound = tracking = None
    AnymailInvalidAddress = ValueError

logger = logging.getLogger(__name__)


def _kinds() -> dict[str, Kind]:
    return {
        EventType.DELIVERED: Kind.DELIVERY,
        EventType.OPENED: Kind.OPEN,
        EventType.CLICKED: Kind.CLICK,
        EventType.BOUNCED: Kind.BOUNCE,
        EventType.DEFERRED: Kind.BOUNCE,
        EventType.COMPLAINED: Kind.COMPLAINT,
    }


def is_soft_bounce(event: Any) -> bool:
    """Whether a bounce is transient: anymail's ``deferred``, or a ``bounced`` that the
    provider's own record calls soft (Amazon SES ``Transient: …``; Postmark ``SoftBounce``;
    Brevo, Mandrill, MailerSend ``soft_bounce(d)``), which anymail does not normalise."""
    if event.event_type == EventType.DEFERRED:
        return True
    if (event.description or "").startswith("Transient"):
        return True
    raw = event.esp_event
    if not isinstance(raw, Mapping):
        return False
    kinds = [raw.get("Type"), raw.get("event"), raw.get("type")]
    if isinstance(raw.get("data"), Mapping):
        kinds.append(raw["data"].get("type"))
    return any(isinstance(kind, str) and "soft" in kind.lower() for kind in kinds)


def tracking_event(event: Any) -> TrackingEvent | None:
    """The :class:`TrackingEvent` of an ``AnymailTrackingEvent``; None for the ignored types."""
    kind = _kinds().get(event.event_type)
    if kind is None or not event.message_id:
        return None
    return TrackingEvent(
        kind=kind,
        message_id=str(event.message_id),
        at=event.timestamp,
        link=event.click_url if kind == Kind.CLICK else None,
        permanent=not (kind == Kind.BOUNCE and is_soft_bounce(event)),
    )


def _addresses(message: Any, header: str) -> list[str]:
    """The addresses of an address header. anymail raises on a header with one address it
    cannot parse (anyone can mail us ``Cc: @@`` or ``From: undisclosed``), and an exception
    here is a 500 that the provider retries for hours: keep the addresses that are valid."""
    try:
        return [a.addr_spec for a in message.get_address_header(header) if a.addr_spec]
    except AnymailInvalidAddress:
        raw = [str(value) for value in message.get_all(header) or []]
        return [address for _, address in getaddresses(raw) if _valid_address(address)]


def _valid_address(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def inbound_message(event: Any) -> InboundMessage | None:
    """The :class:`InboundMessage` of an ``AnymailInboundEvent``."""
    message = event.message
    if message is None:
        return None
    to = _addresses(message, "To")
    cc = _addresses(message, "Cc")
    senders = _addresses(message, "From")  # a (legal, rare) From may have several addresses
    references = message_ids_in(str(message["References"] or ""))
    return InboundMessage(
        sender=senders[0] if senders else "",
        sender_header=str(message["From"] or ""),
        to=message.envelope_recipient or (to[0] if to else ""),
        recipients=to + cc,
        subject=str(message.subject or ""),
        message_id=str(message["Message-ID"] or "") or event.event_id,
        replies_to=message_ids_in(str(message["In-Reply-To"] or "")) + references[::-1],
        at=event.timestamp or message.date,
        text=message.text,
        html=message.html,
        spam_detected=message.spam_detected,
        spam_score=message.spam_score,
    )


def _record(what: str, esp_name: str, record: Callable[[], Any]) -> None:
    """Run ``record`` in its own savepoint; log a failure that a retry cannot cure.

    anymail answers a receiver's exception with a 500, and the provider posts the whole batch
    again, for hours: the batch's earlier events would count twice, and a bad event fails the
    same way each time. So, as Plunk's webhook answers 200 on errors, such a failure is logged
    and the rest of the batch goes on. An ``OperationalError`` (the database unreachable, a
    lock or statement timeout, a serialisation failure) may pass, so it propagates: 500, and
    the provider retries.
    """
    try:
        with transaction.atomic(using=db_for_write()):
            record()
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("anymail %s from %s: not recorded", what, esp_name)


def on_tracking(sender, event, esp_name, **kwargs) -> None:
    translated = tracking_event(event)
    if translated is None:
        logger.debug("anymail %s event from %s: not recorded", event.event_type, esp_name)
        return
    _record(f"email.{translated.kind}", esp_name, lambda: apply_tracking(translated))


def on_inbound(sender, event, esp_name, **kwargs) -> None:
    message = inbound_message(event)
    if message is not None:
        _record("inbound message", esp_name, lambda: record_inbound(message))


def connect() -> bool:
    """Connect the receivers to anymail's signals; False when anymail is not installed."""
    if tracking is None:
        return False
    tracking.connect(on_tracking, dispatch_uid="plunk_events.anymail_tracking")
    inbound.connect(on_inbound, dispatch_uid="plunk_events.anymail_inbound")
    return True
