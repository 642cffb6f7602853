"""Include with ``path("<prefix>/", include("plunk_events.urls"))``; the example site uses ``""``."""

from __future__ import annotations

from django.urls import path

from . import pages
from .api.urls import fallback_urlpatterns
from .api.urls import urlpatterns as api_urlpatterns

app_name = "plunk_events"

# The subscription pages of email links (plunk_events.pages); the API's fallback route does not
# claim ``email/``.
page_urlpatterns = [
    path("email/unsubscribe/<str:token>", pages.unsubscribe, name="email-unsubscribe"),
    path("email/subscribe/<str:token>", pages.subscribe, name="email-subscribe"),
    path("email/manage/<str:token>", pages.manage, name="email-manage"),
]

urlpatterns = [*api_urlpatterns, *page_urlpatterns, *fallback_urlpatterns]
