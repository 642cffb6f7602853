from __future__ import annotations

from django.core.management.base import BaseCommand

from plunk_events.models import Project
from plunk_events.services import ingest, rollups


class Command(BaseCommand):
    help = (
        "Fold new events into the rollups used by /events/names and /events/stats, and purge "
        "expired idempotency keys. "
        "The read paths do this lazily; run it from cron to keep reads fast after quiet periods."
    )

    def handle(self, *args, **options):
        for project in Project.objects.order_by("name"):
            rows = rollups.rollup(project)
            self.stdout.write(f"{project.name}: {rows} day/name groups added")
        purged = ingest.purge_expired_idempotency_keys()
        self.stdout.write(f"{purged} expired idempotency keys purged")
