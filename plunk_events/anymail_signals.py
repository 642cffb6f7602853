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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .services.email_tracking import (
    InboundMessage,
    Kind,
    TrackingEvent,
    apply_tracking,
    message_ids_in,
    record_inbound,
)

try:
    from anymail.signals import EventType, inbound, tracking
except ImportError:  # the anymail extra is not installed: mail is sent, only email.sent recorded
    EventType = inbound = tracking = None

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


def _address(value: Any) -> str:
    if isinstance(value, list):  # a (legal, rare) From with several addresses
        value = value[0] if value else None
    return (value.addr_spec or "") if value is not None else ""


def inbound_message(event: Any) -> InboundMessage | None:
    """The :class:`InboundMessage` of an ``AnymailInboundEvent``."""
    message = event.message
    if message is None:
        return None
    to = [a.addr_spec for a in message.to if a.addr_spec]
    cc = [a.addr_spec for a in message.cc if a.addr_spec]
    references = message_ids_in(str(message["References"] or ""))
    return InboundMessage(
        sender=_address(message.from_email),
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


def on_tracking(sender, event, esp_name, **kwargs) -> None:
    translated = tracking_event(event)
    if translated is None:
        logger.debug("anymail %s event from %s: not recorded", event.event_type, esp_name)
        return
    apply_tracking(translated)


def on_inbound(sender, event, esp_name, **kwargs) -> None:
    message = inbound_message(event)
    if message is not None:
        record_inbound(message)


def connect() -> bool:
    """Connect the receivers to anymail's signals; False when anymail is not installed."""
    if tracking is None:
        return False
    tracking.connect(on_tracking, dispatch_uid="plunk_events.anymail_tracking")
    inbound.connect(on_inbound, dispatch_uid="plunk_events.anymail_inbound")
    return True
