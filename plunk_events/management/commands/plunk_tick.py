from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from plunk_events.tasks import PeriodicJobsFailed, ensure_ticking, run_due_jobs, supports_chain


class Command(BaseCommand):
    help = (
        "Run the periodic jobs that are due, here and now, then, if the task backend has a "
        "worker (it can defer tasks), make sure the worker's periodic tick is alive. With the "
        "immediate backend run it from cron, e.g. every minute (README, Background work)."
    )

    def handle(self, *args, **options):
        failed = None
        try:
            results = run_due_jobs()
        except PeriodicJobsFailed as exc:
            results, failed = exc.results, exc
        for name, result in results.items():
            self.stdout.write(f"{name}: {json.dumps(result, default=str)}")
        if not results and failed is None:
            self.stdout.write("No periodic job is due.")
        if supports_chain():
            token = ensure_ticking()
            self.stdout.write(
                "The worker's periodic tick was started."
                if token
                else "The worker's periodic tick is alive."
            )
        if failed is not None:
            raise CommandError(f"Periodic jobs failed: {failed}")
