from __future__ import annotations

from django.core.management.base import BaseCommand

from plunk_events.services import deletion


class Command(BaseCommand):
    help = (
        "Finish abandoned delete-by-name jobs: those whose worker was killed (its lease, "
        "PLUNK_EVENTS['DELETE_LEASE_SECONDS'], ran out) or failed. Jobs a live worker holds are "
        "left to it unless --force is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help=(
                "Take over running jobs too, without waiting for their lease to run out (for a "
                "worker you know is dead). Safe if it is alive after all: its next batch finds "
                "the lease gone and rolls back, so no event is deleted or counted twice."
            ),
        )

    def handle(self, *args, **options):
        jobs = deletion.resume_deletions(force=options["force"])
        for job in jobs:
            self.stdout.write(f"{job.name}: {job.deleted_count} events deleted")
        self.stdout.write(f"{len(jobs)} job(s) finished")
