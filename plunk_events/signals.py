"""Signals sent by the services after their transaction commits (never from ``save()``)."""

from __future__ import annotations

from django.dispatch import Signal

#: A tracked event was committed. kwargs: ``event`` (Event), ``contact`` (Contact or None),
#: ``created_contact`` (bool).
event_tracked = Signal()

#: An existing contact's subscription flipped. kwargs: ``contact`` (Contact), ``subscribed`` (bool).
contact_subscription_changed = Signal()

#: A contact entered a tracked DYNAMIC segment; sent after the commit, once per
#: entry. kwargs: ``segment`` (Segment), ``contact`` (Contact), ``event`` (the
#: ``segment.<slug>.entry`` Event).
segment_entered = Signal()

#: A contact left a tracked DYNAMIC segment; as :data:`segment_entered` with the ``.exit`` event.
segment_exited = Signal()
