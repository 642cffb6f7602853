from __future__ import annotations

from django.apps import AppConfig


class PlunkEventsConfig(AppConfig):
    name = "plunk_events"
    verbose_name = "Plunk events"
    # Pinned so a host's DEFAULT_AUTO_FIELD can never create a migration inside the app.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
        from .api import openapi  # noqa: F401  registers the drf-spectacular extensions
