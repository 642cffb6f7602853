"""plunk_events.tasks without a worker: periodic jobs claimed once per interval, ``plunk_tick``,
and the tick chain's guard on django-tasks' DummyBackend (it defers and stores tasks, runs
none). tests/engine runs the same with real workers."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from plunk_events import tasks
from plunk_events.models import Event, EventDailyCount, PeriodicSchedule
from plunk_events.tasks import (
    PeriodicJob,
    PeriodicJobsFailed,
    ensure_ticking,
    run_due_jobs,
    tick,
)
from tests.concurrency import run_at_once


def fail() -> None:
    raise ValueError("broken job")


def old_events(project, n=3) -> None:
    at = timezone.now() - timedelta(hours=1)
    Event.objects.bulk_create(Event(project=project, name="old", created_at=at) for _ in range(n))


def plunk_tick() -> str:
    out = StringIO()
    call_command("plunk_tick", stdout=out)
    return out.getvalue()


def ticks(results) -> list:
    return [r for r in results if r.task.name == "tick"]


# Periodic jobs


@pytest.mark.django_db
def test_a_job_runs_once_per_interval(project):
    old_events(project)
    now = timezone.now()

    # Every job is due on the first run (the segments job too); this test follows the rollups.
    assert run_due_jobs(now=now)["rollups"] == {"projects": 1, "groups": 1, "purged": 0}
    assert EventDailyCount.objects.get(project=project, name="old").count == 3
    assert run_due_jobs(now=now + timedelta(seconds=30)) == {}
    assert run_due_jobs(now=now + timedelta(seconds=60)) == {
        "rollups": {"projects": 1, "groups": 0, "purged": 0},
        # also every minute by default
        "dispatch": {"projects": 0},
        "workflows": {"timers": 0, "timeouts": 0, "stalled": 0},
    }
    row = PeriodicSchedule.objects.get(name="job:rollups")
    assert row.last_run_at == now + timedelta(seconds=60)
    assert row.next_run_at == now + timedelta(seconds=120)


@pytest.mark.django_db
def test_each_job_has_its_own_interval(settings):
    settings.PLUNK_EVENTS = {
        "ROLLUP_SECONDS": 300,
        "SEGMENT_RECOMPUTE_SECONDS": 600,
        "DISPATCH_SWEEP_SECONDS": 120,
        "WORKFLOW_SWEEP_SECONDS": 120,
    }
    now = timezone.now()
    assert set(run_due_jobs(now=now)) == {"rollups", "segments", "dispatch", "workflows"}
    assert run_due_jobs(now=now + timedelta(seconds=60)) == {}
    assert set(run_due_jobs(now=now + timedelta(seconds=120))) == {"dispatch", "workflows"}
    assert set(run_due_jobs(now=now + timedelta(seconds=300))) == {
        "rollups",
        "dispatch",
        "workflows",
    }
    assert set(run_due_jobs(now=now + timedelta(seconds=600))) == {
        "rollups",
        "segments",
        "dispatch",
        "workflows",
    }


@pytest.mark.django_db
def test_a_failing_job_does_not_stop_the_others(monkeypatch):
    monkeypatch.setattr(
        tasks,
        "PERIODIC_JOBS",
        [PeriodicJob("broken", "TICK_SECONDS", "tests.test_tasks.fail"), *tasks.PERIODIC_JOBS],
    )
    out = StringIO()
    with pytest.raises(CommandError, match="broken: ValueError: broken job"):
        call_command("plunk_tick", stdout=out)
    assert out.getvalue().startswith("rollups: ")  # ran, and reported

    # Tried again at its next interval, as the Python API reports it.
    later = timezone.now() + timedelta(seconds=60)
    with pytest.raises(PeriodicJobsFailed) as failed:
        run_due_jobs(now=later)
    assert set(failed.value.errors) == {"broken"}
    assert set(failed.value.results) == {"rollups", "dispatch", "workflows"}


@pytest.mark.django_db
def test_plunk_tick_runs_the_due_jobs_inline(project):
    old_events(project)

    assert plunk_tick() == (
        'rollups: {"projects": 1, "groups": 1, "purged": 0}\n'
        'segments: {"computed": 0, "counted": 0, "failed": 0}\n'
        'dispatch: {"projects": 0}\n'
        'workflows: {"timers": 0, "timeouts": 0, "stalled": 0}\n'
    )
    assert EventDailyCount.objects.get(project=project, name="old").count == 3
    # Cron a minute later would run it again; right away, nothing is due.
    assert plunk_tick() == "No periodic job is due.\n"
    # The immediate backend has no worker, hence no chain.
    assert not PeriodicSchedule.objects.filter(name="tick").exists()


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_claim_a_job_once():
    ran = run_at_once(run_due_jobs, 6)
    # Each job ran in exactly one of the threads (not always the same thread for all jobs).
    assert sorted(name for r in ran for name in r) == sorted(j.name for j in tasks.PERIODIC_JOBS)


# The tick chain


@pytest.mark.django_db
def test_ensure_ticking_does_nothing_without_a_worker(enqueued):
    assert ensure_ticking() is None
    assert enqueued == []
    assert not PeriodicSchedule.objects.exists()


@pytest.mark.django_db
def test_ensure_ticking_starts_one_chain(deferring, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        token = ensure_ticking()
    assert token
    assert [r.args for r in ticks(deferring)] == [[token]]
    assert ticks(deferring)[0].task.run_after is None  # runs at once
    # Alive: nothing more, for as long as its pending tick is not three ticks overdue.
    row = PeriodicSchedule.objects.get(name="tick")
    with django_capture_on_commit_callbacks(execute=True):
        assert ensure_ticking() is None
        assert ensure_ticking(now=row.next_run_at + timedelta(seconds=179)) is None
    assert len(ticks(deferring)) == 1


@pytest.mark.django_db
def test_a_tick_hands_the_chain_on_before_running_the_jobs(
    deferring, project, django_capture_on_commit_callbacks
):
    old_events(project)
    with django_capture_on_commit_callbacks(execute=True):
        first = ensure_ticking()
        result = tick.call(first)

    new = PeriodicSchedule.objects.get(name="tick")
    assert result == {
        "next": new.token,
        "ran": {
            "rollups": {"projects": 1, "groups": 1, "purged": 0},
            "segments": {"computed": 0, "counted": 0, "failed": 0},
            "dispatch": {"projects": 0},
            "workflows": {"timers": 0, "timeouts": 0, "stalled": 0},
        },
    }
    following = ticks(deferring)[-1]
    assert following.args == [new.token] != [first]
    assert following.task.run_after == new.next_run_at == new.last_run_at + timedelta(seconds=60)

    # The old token is spent: a second run of that tick is stale and enqueues nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert tick.call(first) == {"stale": True, "restarted": False}
    assert len(ticks(deferring)) == 2
    assert PeriodicSchedule.objects.get(name="tick").token == new.token


@pytest.mark.django_db
def test_an_overdue_chain_is_restarted_once(deferring, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = ensure_ticking()
    late = PeriodicSchedule.objects.get(name="tick").next_run_at + timedelta(seconds=181)

    with django_capture_on_commit_callbacks(execute=True):
        second = ensure_ticking(now=late)
        assert ensure_ticking(now=late) is None
    assert second not in (None, first)
    assert [r.args for r in ticks(deferring)] == [[first], [second]]
    # The old chain's tick, if it still runs, is stale.
    with django_capture_on_commit_callbacks(execute=True):
        assert tick.call(first) == {"stale": True, "restarted": False}
    assert len(ticks(deferring)) == 2


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("lost", [False, True], ids=["no chain", "lost chain"])
def test_concurrent_ensure_ticking_starts_one_chain(deferring, lost):
    if lost:
        PeriodicSchedule.objects.create(
            name="tick", token="old", next_run_at=timezone.now() - timedelta(hours=1)
        )
    tokens = run_at_once(ensure_ticking, 8)
    started = [t for t in tokens if t]
    assert len(tokens) == 8 and len(started) == 1
    assert [r.args for r in ticks(deferring)] == [started]
    assert PeriodicSchedule.objects.get(name="tick").token == started[0]


@pytest.mark.django_db(transaction=True)
def test_migrate_starts_the_chain_and_flush_does_not(deferring):
    call_command("migrate", verbosity=0)
    token = PeriodicSchedule.objects.get(name="tick").token
    assert [r.args for r in ticks(deferring)] == [[token]]

    call_command("flush", verbosity=0, interactive=False)
    assert not PeriodicSchedule.objects.exists()
    assert len(ticks(deferring)) == 1


@pytest.mark.parametrize("key", ["TICK_SECONDS", "ROLLUP_SECONDS"])
def test_intervals_must_be_positive_integers(settings, key):
    from plunk_events.checks import check_settings

    settings.PLUNK_EVENTS = {key: 0}
    assert [problem.id for problem in check_settings()] == ["plunk_events.E002"]


@pytest.mark.django_db(transaction=True)
def test_an_enqueue_that_fails_after_the_commit_is_logged_and_the_write_stands(settings, caplog):
    from django.db import transaction

    from plunk_events.models import Project
    from plunk_events.services.projects import create_project
    from plunk_events.tasks import enqueue_on_commit

    # RQ with nothing listening at its Redis address: the enqueue fails, after the commit.
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0"}}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    with transaction.atomic():
        project = create_project("Written")
        enqueue_on_commit(tick, "token")

    assert Project.objects.filter(pk=project.pk).exists()
    (record,) = [r for r in caplog.records if "in on_commit()" in r.getMessage()]
    assert record.levelname == "ERROR"
    assert "ConnectionError" in record.exc_info[0].__name__
