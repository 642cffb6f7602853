"""Include with ``path("<prefix>/", include("plunk_events.urls"))``; the example site uses ``""``."""

from __future__ import annotations

from .api.urls import fallback_urlpatterns
from .api.urls import urlpatterns as api_urlpatterns

app_name = "plunk_events"

urlpatterns = [*api_urlpatterns, *fallback_urlpatterns]
