from __future__ import annotations

from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-docs"),
    path("", include("plunk_events.urls")),
]
if find_spec("anymail"):  # the optional extra: its webhooks send the tracking/inbound signals
    urlpatterns.insert(0, path("anymail/", include("anymail.urls")))
