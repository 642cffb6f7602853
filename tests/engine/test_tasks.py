"""Background work through the configured task backend with a real worker (tests/engine):
tasks are enqueued only by committed transactions, and the periodic tick runs the jobs and keeps
exactly one chain going, restarting it once when its pending tick was lost.

Run with each backend: ``pytest -m engine`` (immediate), ``PLUNK_TASKS_BACKEND=db pytest -m
engine`` and ``PLUNK_TASKS_BACKEND=rq pytest -m engine`` (Redis on 127.0.0.1:6379).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from plunk_events.models import Contact, Event, EventDailyCount, PeriodicSchedule, Project
from plunk_events.services.projects import create_project
from plunk_events.tasks import enqueue_on_commit, ensure_ticking
from tests.concurrency import run_at_once

from .conftest import chain_token, drop_pending_ticks, finished_ticks, pending_ticks
from .tasks import record

pytestmark = pytest.mark.engine

#: A short tick for the chain tests; the worker gets the same settings.
FAST = {"TICK_SECONDS": 1, "ROLLUP_SECONDS": 1, "ROLLUP_LAG_SECONDS": 1}


def emails(project) -> set[str]:
    return set(Contact.objects.filter(project=project).values_list("email", flat=True))


def old_events(project, n=5) -> None:
    """``n`` events an hour old: the next rollup folds them."""
    at = timezone.now() - timedelta(hours=1)
    Event.objects.bulk_create(Event(project=project, name="old", created_at=at) for _ in range(n))


def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(task_worker):
    project = create_project("Engine")
    task_worker.start()

    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(record, str(project.pk), "rolled-back")
        raise RuntimeError("the write fails")
    # Queued after it: when this one ran, the rolled-back one would have run before.
    enqueue_on_commit(record, str(project.pk), "after")

    task_worker.wait_until(lambda: emails(project), what="the later task")
    assert emails(project) == {"after@engine.test"}


def test_a_task_enqueued_in_a_transaction_runs_after_the_commit_and_sees_its_rows(task_worker):
    task_worker.start()

    with transaction.atomic():
        project = create_project("Created with its task")
        enqueue_on_commit(record, str(project.pk), "committed")
        # Not before the commit: the immediate backend would have run it by now.
        assert not Contact.objects.filter(project=project).exists()

    task_worker.wait_until(lambda: emails(project), what="the task")
    assert emails(project) == {"committed@engine.test"}


def test_outside_a_transaction_a_task_is_enqueued_at_once(task_worker):
    project = create_project("Autocommit")
    task_worker.start()

    enqueue_on_commit(record, str(project.pk), "now")

    task_worker.wait_until(lambda: emails(project), what="the task")
    assert emails(project) == {"now@engine.test"}


def test_the_worker_tick_folds_rollups_and_keeps_exactly_one_pending_tick(chain_worker, settings):
    settings.PLUNK_EVENTS = FAST
    project = create_project("Rolled by the tick")
    old_events(project)
    assert ensure_ticking() is not None  # what migrate and plunk_tick do
    chain_worker.start()

    chain_worker.wait_until(
        lambda: EventDailyCount.objects.filter(project=project, name="old", count=5).exists(),
        what="the rollup job",
    )
    # The chain goes on: ticks keep handing it on, one pending tick at a time.
    seen = set()
    chain_worker.wait_until(lambda: len(finished_ticks()) >= 3, what="three ticks")
    for _ in range(20):
        pending = pending_ticks()
        assert len(pending) <= 1, pending
        seen.update(pending)
    chain_worker.wait_until(
        lambda: pending_ticks() == [chain_token()], what="one pending tick carrying the token"
    )
    assert all(not result.get("stale") for result in finished_ticks())
    rollups = [r["ran"]["rollups"] for r in finished_ticks() if "rollups" in r["ran"]]
    assert rollups[0] == {"projects": 1, "groups": 1, "purged": 0}
    assert Project.objects.get(pk=project.pk).events_rolled_until is not None
    assert seen


def test_a_lost_pending_tick_is_restarted_exactly_once(chain_worker, settings):
    settings.PLUNK_EVENTS = FAST
    assert ensure_ticking() is not None
    chain_worker.start()
    chain_worker.wait_until(lambda: len(finished_ticks()) >= 2, what="two ticks")
    chain_worker.stop()

    # The queue loses the pending tick, and nothing runs for a while.
    assert drop_pending_ticks() == 1
    assert pending_ticks() == []
    PeriodicSchedule.objects.filter(name="tick").update(
        next_run_at=timezone.now() - timedelta(minutes=5)
    )
    before = len(finished_ticks())

    # Eight callers at once (cron, migrate, stale ticks ...): one chain.
    tokens = run_at_once(ensure_ticking, 8)
    started = [token for token in tokens if token]
    assert len(started) == 1
    assert pending_ticks() == started == [chain_token()]
    assert ensure_ticking() is None  # alive now

    chain_worker.start()
    chain_worker.wait_until(lambda: len(finished_ticks()) >= before + 2, what="the new chain")
    chain_worker.wait_until(lambda: pending_ticks() == [chain_token()], what="one pending tick")


def test_a_late_tick_of_a_replaced_chain_is_stale_and_does_nothing(chain_worker, settings):
    settings.PLUNK_EVENTS = FAST
    first = ensure_ticking()
    # The worker is down long enough for the chain to count as lost, and a new one starts ...
    PeriodicSchedule.objects.filter(name="tick").update(
        next_run_at=timezone.now() - timedelta(minutes=5)
    )
    second = ensure_ticking()
    assert second not in (None, first)
    assert sorted(pending_ticks()) == sorted([first, second])

    # ... then the worker comes back and runs both: the old one is stale.
    chain_worker.start()
    chain_worker.wait_until(
        lambda: any(r.get("stale") for r in finished_ticks()), what="the stale tick"
    )
    chain_worker.wait_until(lambda: len(finished_ticks()) >= 3, what="the chain going on")
    chain_worker.wait_until(lambda: pending_ticks() == [chain_token()], what="one pending tick")
    stale = [r for r in finished_ticks() if r.get("stale")]
    assert stale == [{"stale": True, "restarted": False}]
