"""What happened to one email: its ``email.*`` events, for the admin's email page.

``GET /events`` has no ``emailId`` filter (nor does Plunk's), and the events table has no index
on ``email_id``. Every event an email causes (``email.sent``, the tracking events) is recorded
for the email's contact, so the read goes through the (project, contact, created_at) index and
filters the contact's events by ``email_id``: a contact's events, never the project's.
"""

from __future__ import annotations

from ..email_models import Email
from ..models import Event

#: Most events listed for one email (a message opened a thousand times is not read row by row).
EMAIL_EVENTS_LIMIT = 100


def email_events(email: Email, *, limit: int = EMAIL_EVENTS_LIMIT) -> list[Event]:
    """The email's events, oldest first, at most ``limit`` (the first ones: sent, delivered,
    the first opens and clicks)."""
    return list(
        Event.objects.filter(
            project_id=email.project_id, contact_id=email.contact_id, email_id=email.pk
        ).order_by("created_at", "id")[:limit]
    )
