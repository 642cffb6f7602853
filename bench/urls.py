"""The example site's routes plus two bench-only endpoints.

``POST /bench/naive/track`` is the naive baseline; ``GET /bench/ping`` is a plain Django view
returning constant JSON with no database access, the HTTP ceiling of the box (see BENCHMARKS.md).
"""

from __future__ import annotations

from django.http import JsonResponse
from django.urls import path

from example_project.urls import urlpatterns as site_urlpatterns

from .naive import NaiveTrackView


def ping(request):
    return JsonResponse({"success": True})


urlpatterns = [
    path("bench/naive/track", NaiveTrackView.as_view(), name="bench-naive-track"),
    path("bench/ping", ping, name="bench-ping"),
    *site_urlpatterns,
]
