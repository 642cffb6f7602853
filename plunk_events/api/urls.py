"""Routes of the API, in the order of spec §4.8.

Event names may contain dots, slashes and words like ``names``: each ``events/...`` route maps GET
to its query and DELETE to ``destroy`` of the whole remainder (``path_name``), so
``DELETE /events/names`` deletes the event called "names".
"""

from __future__ import annotations

from django.urls import re_path

from .views import EventViewSet, TrackBatchView, TrackView, UnknownRouteView

events_names = EventViewSet.as_view({"get": "names", "delete": "destroy"})
events_stats = EventViewSet.as_view({"get": "stats", "delete": "destroy"})
events_contact = EventViewSet.as_view({"get": "contact_events", "delete": "destroy"})
events_usage = EventViewSet.as_view({"get": "usage", "delete": "destroy"})
events_named = EventViewSet.as_view({"delete": "destroy"})
events_list = EventViewSet.as_view({"get": "list"})

urlpatterns = [
    re_path(r"^v1/track$", TrackView.as_view(), name="track"),
    re_path(r"^v1/track/batch$", TrackBatchView.as_view(), name="track-batch"),
    re_path(r"^events$", events_list, name="events"),
    re_path(r"^events/(?P<path_name>names)$", events_names, name="event-names"),
    re_path(r"^events/(?P<path_name>stats)$", events_stats, name="event-stats"),
    re_path(
        r"^events/(?P<path_name>contact/(?P<contact_id>[^/]+))$",
        events_contact,
        name="contact-events",
    ),
    re_path(r"^events/(?P<path_name>(?P<name>.+)/usage)$", events_usage, name="event-usage"),
    re_path(r"^events/(?P<path_name>.+)$", events_named, name="event-detail"),
]

#: Last: anything else under the app's prefixes is a 404 in the envelope, not Django's HTML page.
fallback_urlpatterns = [
    re_path(
        r"^(?:v1|events|contacts|segments|workflows)(?:/.*)?$",
        UnknownRouteView.as_view(),
        name="unknown-route",
    ),
]
