"""The test site plus a second AdminSite, ``other-admin``, with the app's ModelAdmins registered
on it: links of its pages must stay within it."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from tests.urls import urlpatterns as site_urlpatterns

other_site = admin.AdminSite(name="otheradmin")
for model, model_admin in admin.site._registry.items():
    if model._meta.app_label == "plunk_events":
        other_site.register(model, type(model_admin))

urlpatterns = [path("other-admin/", other_site.urls), *site_urlpatterns]
