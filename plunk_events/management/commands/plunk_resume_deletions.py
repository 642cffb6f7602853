from __future__ import annotations

from django.core.management.base import BaseCommand

from plunk_events.services import store


class Command(BaseCommand):
    help = "Finish delete-by-name jobs that were interrupted (a crash or a killed worker)."

    def handle(self, *args, **options):
        jobs = store.resume_deletions()
        for job in jobs:
            self.stdout.write(f"{job.name}: {job.deleted_count} events deleted")
        self.stdout.write(f"{len(jobs)} job(s) finished")
