"""Engine tests: background work through the task backend that ``PLUNK_TASKS_BACKEND`` selects
(tests/settings.py), with a real worker process for the backends that have one.

- ``immediate`` (default, ``make test``): tasks run inline when enqueued; there is no worker.
- ``db``: django-tasks-db; ``manage.py db_worker`` runs against the test database (a file on
  SQLite, so both processes see it).
- ``rq``: django-tasks-rq; ``manage.py rqworker --with-scheduler`` on Redis database 14.

Mark engine test modules ``pytestmark = pytest.mark.engine``: ``make test-engine`` (and
``.ci/run``) runs ``pytest -m engine`` once per backend. Every one uses ``transactional_db``
(through :func:`task_worker`): a worker only sees committed rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from plunk_events.models import PeriodicSchedule

ROOT = Path(__file__).resolve().parents[2]
TICK_PATH = "plunk_events.tasks.tick"


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def backend_name() -> str:
    return settings.TASKS_BACKEND


def has_worker() -> bool:
    return backend_name() != "immediate"


class TaskWorker:
    """A worker process for the configured backend (none for ``immediate``)."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        #: Crashed workers, whose forked processes :meth:`stop` ends.
        self.crashed: list[subprocess.Popen] = []

    def command(self) -> list[str]:
        django = [sys.executable, "-m", "django"]
        if backend_name() == "db":
            return [*django, "db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
        return [
            *django,
            "rqworker",
            "default",
            "--with-scheduler",
            "--job-class",
            "django_tasks_rq.Job",
        ]

    def start(self) -> None:
        """Start the worker; it reads ``settings.PLUNK_EVENTS`` as the test has it now."""
        if not has_worker():
            return
        assert self.process is None, "the worker is running already"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.engine.worker_settings",
            "PLUNK_WORKER_DATABASE_NAME": str(connection.settings_dict["NAME"]),
            "PLUNK_WORKER_PLUNK_EVENTS": json.dumps(settings.PLUNK_EVENTS),
            "PYTHONPATH": str(ROOT),
        }
        log = self.log_path.open("ab")
        # Its own process group: rqworker --with-scheduler forks a scheduler process, which
        # must go with it (an orphaned scheduler would move the next test's deferred jobs).
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        """Stop the worker as an operator would (SIGTERM: warm shutdown), and wait for it."""
        for crashed in self.crashed:
            _kill_group(crashed)
        self.crashed = []
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _kill_group(process)

    def crash(self) -> None:
        """SIGKILL the worker process: no warm shutdown, work in flight is cut off. Only that
        process: RQ's forked scheduler keeps moving deferred jobs until :meth:`stop`."""
        if self.process is None:
            return
        process, self.process = self.process, None
        process.kill()
        process.wait()
        self.crashed.append(process)

    def assert_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the worker exited ({self.process.returncode}):\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 30.0, what: str = ""):
        """:func:`wait_until`, failing at once if the worker died."""

        def check():
            self.assert_alive()
            return predicate()

        return wait_until(check, timeout=timeout, what=what)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of the worker's process group (the main process is its leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def redis_or_skip() -> None:
    """Redis must answer; on CI (CI=true) a missing Redis fails the test, as for PostgreSQL."""
    import django_rq
    from redis.exceptions import RedisError

    try:
        django_rq.get_connection("default").ping()
    except RedisError as exc:
        message = f"Redis for the RQ task backend is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def clear_queue() -> None:
    """Forget every task of earlier tests (and the tick that ``migrate`` started)."""
    if backend_name() == "db":
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.all().delete()
    elif backend_name() == "rq":
        import django_rq

        django_rq.get_connection("default").flushdb()


def pending_ticks() -> list[str]:
    """Tokens of the ticks waiting in the queue (enqueued, not started), deferred ones included."""
    if backend_name() == "db":
        from django_tasks_db.models import DBTaskResult

        rows = DBTaskResult.objects.filter(task_path=TICK_PATH, status="READY")
        return [row.args_kwargs["args"][0] for row in rows]
    if backend_name() == "rq":
        return [job.args[0] for job in _rq_pending_jobs() if job.func_name == TICK_PATH]
    return []


def _rq_pending_jobs() -> list:
    import django_rq
    from django_tasks_rq import Job
    from rq.registry import ScheduledJobRegistry

    queue = django_rq.get_queue("default", job_class=Job)
    ids = dict.fromkeys([*queue.get_job_ids(), *ScheduledJobRegistry(queue=queue).get_job_ids()])
    return [job for job in Job.fetch_many(list(ids), connection=queue.connection) if job]


def drop_pending_ticks() -> int:
    """Delete the pending ticks from the queue, as a lost queue entry would; returns how many."""
    if backend_name() == "db":
        from django_tasks_db.models import DBTaskResult

        return DBTaskResult.objects.filter(task_path=TICK_PATH, status="READY").delete()[0]
    jobs = [job for job in _rq_pending_jobs() if job.func_name == TICK_PATH]
    for job in jobs:
        job.delete()
    return len(jobs)


def finished_ticks() -> list[dict]:
    """Return values of the ticks that finished successfully (db and rq only)."""
    if backend_name() == "db":
        from django_tasks_db.models import DBTaskResult

        rows = DBTaskResult.objects.filter(task_path=TICK_PATH, status="SUCCESSFUL")
        return [row.return_value for row in rows.order_by("finished_at")]
    import django_rq
    from django_tasks_rq import Job
    from rq.registry import FinishedJobRegistry

    queue = django_rq.get_queue("default", job_class=Job)
    ids = FinishedJobRegistry(queue=queue).get_job_ids()
    jobs = [job for job in Job.fetch_many(ids, connection=queue.connection) if job]
    return [job.return_value() for job in jobs if job.func_name == TICK_PATH]


def chain_token() -> str | None:
    row = PeriodicSchedule.objects.filter(name="tick").first()
    return row.token if row else None


@pytest.fixture
def task_worker(transactional_db, tmp_path, request):
    """A :class:`TaskWorker` on an empty queue; ``start()`` it once the test's settings are set.

    Stopped at the end; its log is printed (shown for a failed test).
    """
    if backend_name() == "rq":
        redis_or_skip()
    clear_queue()
    PeriodicSchedule.objects.all().delete()
    worker = TaskWorker(tmp_path / "worker.log")
    yield worker
    worker.stop()
    log = worker.log()
    if log:
        print(f"--- {backend_name()} worker log ---\n{log}")
    clear_queue()


@pytest.fixture
def chain_worker(task_worker):
    """:func:`task_worker` for the tick chain, which needs a backend that defers tasks."""
    if not has_worker():
        pytest.skip("the immediate backend has no worker: plunk_tick runs the jobs from cron")
    return task_worker
