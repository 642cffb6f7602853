"""Python API of segment membership: what ``/segments/<id>/...`` does, for host code.

Each function takes a :class:`~plunk_events.models.Segment` and raises
``plunk_events.services.errors.PlunkError`` (``ValidationFailed`` for bad input) as the routes
answer 4xx.
"""

from __future__ import annotations

from typing import Any

from .models import Segment
from .services import segments as _service
from .services.segments import MemberPage


def members(segment: Segment, page: int = 1, page_size: int = 20) -> MemberPage:
    """A page of members (``GET /segments/<id>/contacts``): ``.contacts``, ``.total``,
    ``.page``, ``.page_size``, ``.total_pages``; ``page_size`` is capped at 100."""
    return _service.members(segment, page, page_size)


def add_members(
    segment: Segment, emails: list[str], *, create_missing: bool = False, subscribed: bool = True
) -> dict[str, Any]:
    """``POST /segments/<id>/members`` (STATIC only): ``{added, created, notFound}``."""
    return _service.add_members(
        segment, emails, create_missing=create_missing, subscribed=subscribed
    )


def remove_members(segment: Segment, emails: list[str]) -> dict[str, int]:
    """``DELETE /segments/<id>/members`` (STATIC only): ``{removed}``."""
    return _service.remove_members(segment, emails)


def compute(segment: Segment) -> dict[str, int]:
    """``POST /segments/<id>/compute`` (STATIC or tracked): ``{added, removed, total}``,
    recording one ``segment.<slug>.entry``/``.exit`` event per change."""
    return _service.compute(segment)


def refresh(segment: Segment) -> int:
    """``POST /segments/<id>/refresh``: stores and returns the member count."""
    return _service.refresh_count(segment)


__all__ = ["MemberPage", "add_members", "compute", "members", "refresh", "remove_members"]
