"""Section 6 of ``make bench``: the workflow runtime at the seeded size (issue 10).

* Track throughput with 3 enabled workflows triggered by tracked names (event_1..event_3, the
  most common) against none: same gunicorn, ``db_worker`` running in both, alternating,
  medians of three.
* Dispatch latency: from a track's response to its execution's start (``started_at``), tracks
  sent one at a time at a steady rate with the worker running; p50 and p95.
* 10,000 executions waiting on a DELAY, all due at the same instant: how long after it the
  last one has resumed, with one worker.
"""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from engine import Worker, alternate_tracks, throughput, variant_table

if TYPE_CHECKING:
    from run import Bench

PREFIX = "bench workflow"


def _drop(project) -> None:
    """Every workflow and segment of the project goes: the seeded data set has none, and any
    left by an interrupted run would be measured along."""
    from plunk_events.models import Segment, Workflow

    Workflow.objects.filter(project=project).delete()
    Segment.objects.filter(project=project).delete()


def _workflow(project, name: str, event_name: str, steps: list[dict], *, enabled=True):
    from plunk_events.services import workflows

    return workflows.create_workflow(
        project, name=f"{PREFIX} {name}", event_name=event_name, enabled=enabled, steps=steps
    )


PARK = [{"type": "DELAY", "name": "Park", "config": {"amount": 1, "unit": "days"}}]


def measure_track_with_workflows(bench: Bench, *, wrk, Gunicorn, headers, root) -> dict:
    from django_tasks_db.models import DBTaskResult

    from plunk_events.models import Workflow
    from plunk_events.workflow_models import WorkflowExecution

    _drop(bench.big)
    three = [_workflow(bench.big, f"on event_{i}", f"event_{i}", PARK) for i in (1, 2, 3)]
    ids = [w.pk for w in three]
    DBTaskResult.objects.all().delete()

    def switch(variant: str) -> None:
        Workflow.objects.filter(pk__in=ids).update(enabled=variant == "with")

    with Worker(bench.env, root), Gunicorn(bench.env) as server:
        results = alternate_tracks(bench, server, wrk=wrk, headers=headers, switch=switch)
    started = WorkflowExecution.objects.filter(workflow__in=ids).count()
    _drop(bench.big)
    return {**throughput(results), "executions": started}


def measure_dispatch_latency(bench: Bench, *, Gunicorn, root, tracks: int = 200) -> dict:
    """Tracks of a trigger, one every 50 ms, each for a new contact; latency = the execution's
    ``started_at`` minus the moment the track's response arrived (same clock)."""
    from django_tasks_db.models import DBTaskResult

    from plunk_events.workflow_models import WorkflowExecution

    _drop(bench.big)
    DBTaskResult.objects.all().delete()  # the last section's backlog is not this one's
    flow = _workflow(bench.big, "latency", "bench_latency", PARK)
    answered: dict[str, datetime] = {}
    with Worker(bench.env, root), Gunicorn(bench.env) as server:
        for i in range(tracks):
            email = f"latency{i}@bench.test"
            body = f'{{"email": "{email}", "event": "bench_latency"}}'.encode()
            request = urllib.request.Request(
                server.base + "/v1/track",
                data=body,
                method="POST",
                headers={"Authorization": bench.pk, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
            answered[email] = datetime.now(UTC)
            time.sleep(0.05)
        deadline = time.monotonic() + 60
        runs = WorkflowExecution.objects.filter(workflow=flow)
        while runs.count() < tracks and time.monotonic() < deadline:
            time.sleep(0.2)
    latencies = sorted(
        (started - answered[email]).total_seconds() * 1e3
        for email, started in runs.values_list("contact__email", "started_at")
        if email in answered
    )
    queue = _queue_summary()
    _drop(bench.big)
    if not latencies:
        return {"tracks": tracks, "started": 0, "queue": queue}
    return {
        "queue": queue,
        "tracks": tracks,
        "started": len(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
        "max_ms": latencies[-1],
    }


def _queue_summary() -> dict[str, dict]:
    """Per task: how many ran, the longest run and the longest wait in the queue (seconds)."""
    from django_tasks_db.models import DBTaskResult

    summary: dict[str, dict] = {}
    rows = DBTaskResult.objects.values_list(
        "task_path", "status", "enqueued_at", "run_after", "started_at", "finished_at"
    )
    for path, status, enqueued, run_after, started, finished in rows:
        entry = summary.setdefault(path.rsplit(".", 1)[-1], {"n": 0, "run": 0.0, "wait": 0.0})
        entry["n"] += 1
        if started and finished:
            entry["run"] = max(entry["run"], (finished - started).total_seconds())
        due = max(enqueued, run_after) if run_after and run_after.year < 9999 else enqueued
        if started and due:
            entry["wait"] = max(entry["wait"], (started - due).total_seconds())
        entry.setdefault("statuses", {}).setdefault(status, 0)
        entry["statuses"][status] += 1
    return summary


def measure_delay_resume(bench: Bench, *, root, executions: int = 10_000) -> dict:
    """``executions`` runs parked on a DELAY, all due at one instant ``due``: the worker's
    deferred timer task resumes them; how long after ``due`` the last one completed."""
    from django.db import transaction
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from plunk_events.models import Contact, WorkflowStep
    from plunk_events.services import workflow_runtime
    from plunk_events.workflow_models import WorkflowExecution, WorkflowStepExecution

    _drop(bench.big)
    DBTaskResult.objects.all().delete()
    steps = [
        {"type": "DELAY", "name": "Wait", "config": {"amount": 1, "unit": "minutes"}},
        {"type": "EXIT", "name": "Done", "config": {"reason": "resumed"}},
    ]
    flow = _workflow(bench.big, "delays", "bench_delays", steps)
    by_type = {s.type: s for s in WorkflowStep.objects.filter(workflow=flow)}
    contacts = list(
        Contact.objects.filter(project=bench.big).values_list("pk", flat=True)[:executions]
    )
    t0 = time.monotonic()
    due = timezone.now() + timedelta(seconds=60)
    now = timezone.now()
    runs = [
        WorkflowExecution(
            project=bench.big,
            workflow=flow,
            contact_id=contact,
            status="WAITING",
            current_step=by_type["EXIT"],
            started_at=now,
            updated_at=now,
        )
        for contact in contacts
    ]
    WorkflowExecution.objects.bulk_create(runs, batch_size=1000)
    WorkflowStepExecution.objects.bulk_create(
        [
            WorkflowStepExecution(
                project=bench.big,
                execution=run,
                step=by_type["EXIT"],
                contact_id=run.contact_id,
                status="SCHEDULED",
                execute_after=due,
            )
            for run in runs
        ],
        batch_size=1000,
    )
    with transaction.atomic():
        for _run in runs:  # what each run's DELAY step asks for (one task per second)
            workflow_runtime.schedule_timer(bench.big.pk, due)
    setup_s = time.monotonic() - t0
    with Worker(bench.env, root):
        finished = WorkflowExecution.objects.filter(workflow=flow, status="COMPLETED")
        deadline = time.monotonic() + 600
        while finished.count() < len(runs) and time.monotonic() < deadline:
            time.sleep(1)
        last = finished.order_by("-completed_at").values_list("completed_at", flat=True).first()
        done = finished.count()
    _drop(bench.big)
    return {
        "executions": len(runs),
        "completed": done,
        "setup_s": setup_s,
        "last_after_due_s": (last - due).total_seconds() if last else None,
    }


def report(bench: Bench, track: dict, latency: dict, delays: dict, *, ms, num) -> None:
    r = bench.report
    r.add(
        "## 6. Workflow runtime",
        "",
        "Track throughput with 3 enabled workflows triggered by `event_1`..`event_3` (the most "
        "common tracked names; each run parks on a 1-day DELAY) against the same workflows "
        "disabled: same gunicorn, `db_worker --interval 0.2` running in both, `wrk -c16` "
        f"-d{bench.sizes.ratio_seconds}s after a warm-up, alternating, medians of three.",
        "",
    )
    variant_table(r, track, ("workflows disabled", "3 enabled"), num=num)
    r.add(
        f"With / without: **{100 * track['ratio']:.0f}%**; {num(track['executions'])} "
        "executions started during the runs with the workflows enabled.",
        "",
    )
    if latency.get("started"):
        r.add(
            f"Dispatch latency, track response → execution started, {latency['tracks']} tracks "
            f"one every 50 ms with `db_worker --interval 0.2`: p50 **{ms(latency['p50_ms'])}**, "
            f"p95 **{ms(latency['p95_ms'])}**, max {ms(latency['max_ms'])} "
            f"({latency['started']} of {latency['tracks']} started).",
            "",
        )
    last = delays["last_after_due_s"]
    r.add(
        f"{num(delays['executions'])} executions parked on a DELAY, all due at one instant, "
        f"one worker: {num(delays['completed'])} resumed and completed, the last "
        f"**{'–' if last is None else f'{last:.1f} s'}** after the due time (setup: "
        f"{delays['setup_s']:.0f} s to create the runs and enqueue their deferred tasks).",
        "",
    )
