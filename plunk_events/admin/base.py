"""Helpers shared by the admin modules: JSON display, admin URLs, the one-project changelists."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import quote
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ..models import Project
from .filters import PROJECT_PARAM


def pretty_json(value) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="plunk-json">{}</pre>', text)


def adopt(obj, saved) -> None:
    """Copy a row saved by a service onto the admin's instance (which the admin logs and shows)."""
    for f in obj._meta.concrete_fields:
        setattr(obj, f.attname, getattr(saved, f.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def name_stats_url(site_name: str, project_id, name: str) -> str:
    return reverse(f"{site_name}:plunk_events_event_name_stats", args=[project_id, quote(name)])


def admin_url(site_name: str, viewname: str, *args, query: dict | None = None) -> str:
    """``reverse()`` within the admin site ``site_name``, with an encoded query string."""
    url = reverse(f"{site_name}:{viewname}", args=args)
    return f"{url}?{urlencode(query)}" if query else url


class ProjectScopedMixin:
    """Changelists of per-project tables always show one project, chosen with ``?project=``."""

    def changelist_view(self, request, extra_context=None):
        if (
            request.method == "GET"
            and PROJECT_PARAM not in request.GET
            and IS_POPUP_VAR not in request.GET
        ):
            first = Project.objects.order_by("name", "pk").values_list("pk", flat=True).first()
            if first is not None:
                query = request.GET.copy()
                query[PROJECT_PARAM] = str(first)
                return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)


def event_name_links(site_name: str, project_id, names) -> str:
    if not names:
        return "—"
    return format_html_join(
        ", ",
        '<a href="{}">{}</a>',
        ((name_stats_url(site_name, project_id, n), n) for n in sorted(names)),
    )
