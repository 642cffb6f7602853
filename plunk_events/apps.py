from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PlunkEventsConfig(AppConfig):
    name = "plunk_events"
    verbose_name = "Plunk events"
    # Pinned so a host's DEFAULT_AUTO_FIELD can never create a migration inside the app.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  registers the system checks
        from .anymail_signals import connect as connect_anymail
        from .api import openapi  # noqa: F401  registers the drf-spectacular extensions

        connect_anymail()  # email.* events from the provider's webhooks, when anymail is installed

        post_migrate.connect(start_ticking, sender=self, dispatch_uid="plunk_events.start_ticking")


def start_ticking(sender, *, using, plan=None, **kwargs) -> None:
    """After ``migrate``, start the periodic tick on the task worker (README "Background work").

    ``flush`` sends ``post_migrate`` too, without a plan: nothing to start then.
    """
    if plan is None:
        return
    from .tasks import start_ticking_after_migrate

    start_ticking_after_migrate(using)
