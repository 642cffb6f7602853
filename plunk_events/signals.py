"""Signals sent by the services after their transaction commits (never from ``save()``)."""

from __future__ import annotations

from django.dispatch import Signal

#: A tracked event was committed. kwargs: ``event`` (Event), ``contact`` (Contact or None),
#: ``created_contact`` (bool).
event_tracked = Signal()

#: An existing contact's subscription flipped. kwargs: ``contact`` (Contact), ``subscribed`` (bool).
contact_subscription_changed = Signal()
