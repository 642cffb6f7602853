"""Database router that sends plunk_events reads to a replica (``PLUNK_EVENTS["READ_DATABASE"]``).

Writes always go to the primary, and so do the reads that the event store makes inside its write
transactions (it uses ``router.db_for_write``). Add it to ``DATABASE_ROUTERS`` only when a replica
is configured; see docs/scaling.md for the read-your-writes caveat.
"""

from __future__ import annotations

from .conf import conf

APP_LABEL = "plunk_events"


class ReadReplicaRouter:
    def db_for_read(self, model, **hints):
        if model._meta.app_label == APP_LABEL and conf.READ_DATABASE:
            return conf.READ_DATABASE
        return None

    def db_for_write(self, model, **hints):
        return None

    def allow_relation(self, obj1, obj2, **hints):
        if obj1._meta.app_label == APP_LABEL and obj2._meta.app_label == APP_LABEL:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if app_label == APP_LABEL and conf.READ_DATABASE and db == conf.READ_DATABASE:
            return False
        return None
