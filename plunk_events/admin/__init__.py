"""Admin of plunk_events: event browsing, per-name statistics, guarded bulk delete, and the
projects, contacts, segments and workflows behind them.

Built only from the stock admin (templates, permissions, messages, LogEntry). Every write goes
through :mod:`plunk_events.services`; changelists of big tables stay on the (project, …) indexes:
one project at a time, no full COUNT (:mod:`.paginator`), no facets, no DISTINCT (:mod:`.filters`).
"""

from . import (  # noqa: F401  (registrations)
    contacts,
    email_templates,
    emails,
    events,
    projects,
    segments,
    workflow_pages,
    workflows,
)
from .base import admin_url, adopt, name_stats_url, pretty_json

__all__ = ["admin_url", "adopt", "name_stats_url", "pretty_json"]
