from __future__ import annotations

from django.core.management.base import BaseCommand

from plunk_events.services.housekeeping import fold_rollups


class Command(BaseCommand):
    help = (
        "Fold new events into the rollups used by /events/names and /events/stats, and purge "
        "expired idempotency keys. "
        "The read paths do this lazily, and the periodic tick does it every ROLLUP_SECONDS "
        "(README, Background work)."
    )

    def handle(self, *args, **options):
        def report(project, groups):
            self.stdout.write(f"{project.name}: {groups} day/name groups added")

        totals = fold_rollups(report=report)
        self.stdout.write(f"{totals['purged']} expired idempotency keys purged")
