"""Deletion jobs as a killed worker leaves them, for the service and API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from plunk_events.models import EventDeletion
from plunk_events.services import deletion

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class Killed(Exception):
    """Stands for the worker process dying between two batches."""


def killed_job(project, name, *, batches: int, live: bool = False) -> EventDeletion:
    """A job whose worker committed ``batches`` batches and then died holding its lease.

    The worker runs through the service; only its death is written directly: the lease it
    held is left as a killed process leaves it, expired (or, ``live``, not yet expired).
    """
    job = deletion.start_deletion(project, name)
    done = []

    def die(deleted):
        done.append(deleted)
        if len(done) == batches:
            raise Killed

    with pytest.raises(Killed):
        deletion.run_deletion(job, on_batch=die)
    expires = timezone.now() + timedelta(minutes=5) if live else LONG_AGO
    EventDeletion.objects.filter(pk=job.pk).update(owner="dead-worker", lease_expires_at=expires)
    job.refresh_from_db()
    return job
