"""Plunk-compatible Events API as a reusable Django app."""

from __future__ import annotations

__version__ = "0.1.0"


def track(project, email, event, data=None, subscribed=None):
    """Track ``event`` for ``email`` in ``project`` from host code, with the rules of
    ``POST /v1/track``; raises ``plunk_events.services.errors.ValidationFailed`` on bad input.

    Returns a :class:`plunk_events.services.ingest.TrackResult`.
    """
    from .services import ingest
    from .services.validation import parse_track

    body = {"email": email, "event": event}
    if data is not None:
        body["data"] = data
    if subscribed is not None:
        body["subscribed"] = subscribed
    return ingest.track(project, parse_track(body))
