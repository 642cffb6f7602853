"""Helpers shared by the admin modules: JSON display, admin URLs, the one-project changelists."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import quote
from django.http import HttpResponseRedirect
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ..models import Project
from .filters import PROJECT_PARAM, selected_project


def date_time(value) -> str:
    """One date-time style for the admin's event times: ``2025-01-31 14:05:09 UTC``, in the
    current time zone, named."""
    return date_time_formatter()(value)


def date_time_formatter() -> Callable[[datetime | None], str]:
    """:func:`date_time` with the current time zone looked up once, for a page of rows."""
    zone = timezone.get_current_timezone()
    if zone is UTC or getattr(zone, "key", None) == "UTC":  # the common case, without zoneinfo
        return lambda value: (
            "—"
            if value is None
            else value.astimezone(UTC).isoformat(" ", "seconds")[:19] + " UTC"  # ~3× strftime
        )
    return lambda value: (
        "—" if value is None else timezone.localtime(value, zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    )


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


def name_page_url(site_name: str, project_id, name: str, query: dict | None = None) -> str:
    """:func:`name_stats_url` without a ``reverse()`` per name: the prefix is reversed once per
    project and the name encoded as ``reverse()`` encodes it (admin ``quote``, then RFC 3986)."""
    key = (site_name, str(project_id), get_script_prefix(), get_urlconf())
    prefix = _NAME_PREFIXES.get(key)
    if prefix is None:
        prefix = name_stats_url(site_name, project_id, "x")[:-2]
        _NAME_PREFIXES[key] = prefix
    url = f"{prefix}{url_quote(quote(name), safe=URL_SAFE)}/"
    return f"{url}?{urlencode(query)}" if query else url


#: Characters ``reverse()`` leaves unescaped in a path argument (RFC 3986 sub-delims, / ~ : @).
URL_SAFE = "!$&'()*+,;=/~:@"
_NAME_PREFIXES: dict = {}


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


class ProjectColumnMixin:
    """No Project column when the changelist shows one project: chosen with ``?project=``
    (:class:`ProjectScopedMixin`) or with the stock project filter."""

    def get_list_display(self, request):
        columns = super().get_list_display(request)
        if selected_project(request) is not None or request.GET.get("project__id__exact"):
            return tuple(c for c in columns if c != "project")
        return columns


def event_name_links(site_name: str, project_id, names) -> str:
    if not names:
        return "—"
    return format_html_join(
        ", ",
        '<a href="{}">{}</a>',
        ((name_stats_url(site_name, project_id, n), n) for n in sorted(names)),
    )
