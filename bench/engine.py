"""Section 5 of ``make bench``: the segment engine at the seeded size (issue 9).

* Full compute of a tracked segment (``event.event_1 triggeredWithin 30 days AND data.plan
  equals "pro"``): wall time and statements, first (every member enters) and again (nothing
  changes).
* Re-evaluation of one contact against 20 tracked segments: the statements it emits, their
  database time (pgbench ``-M prepared``, as every DB-time row) and, because the app does not
  prepare statements, planning + execution from ``EXPLAIN ANALYZE`` too.
* Track throughput with 5 tracked DYNAMIC segments in the project against none, same server,
  with the documented worker (``manage.py db_worker``) running in both, alternating, medians of
  three; then the dispatch backlog and whether the memberships equal a full compute.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from run import Bench

BENCH_SEGMENT = "bench segment"
COMPUTE_CONDITION = {
    "logic": "AND",
    "groups": [
        {
            "filters": [
                {
                    "field": "event.event_1",
                    "operator": "triggeredWithin",
                    "value": 30,
                    "unit": "days",
                },
                {"field": "data.plan", "operator": "equals", "value": "pro"},
            ]
        }
    ],
}


def _filter(field: str, operator: str, value=None, **extra) -> dict:
    return {
        "field": field,
        "operator": operator,
        **extra,
        **({} if value is None else {"value": value}),
    }


def twenty_conditions() -> list[dict]:
    """Twenty conditions of the kinds a project tracks: recent activity with a plan, activity
    or a data threshold, no activity while subscribed."""
    plans = ["free", "pro", "team"]
    out = []
    for i in range(1, 11):
        window = _filter(f"event.event_{i}", "triggeredWithin", 30, unit="days")
        plan = _filter("data.plan", "equals", plans[i % 3])
        out.append({"logic": "AND", "groups": [{"filters": [window, plan]}]})
    for i in range(11, 16):
        out.append(
            {
                "logic": "OR",
                "groups": [
                    {"filters": [_filter(f"event.event_{i}", "triggered")]},
                    {"filters": [_filter("data.value", "greaterThan", i * 10)]},
                ],
            }
        )
    for i in range(16, 21):
        quiet = _filter(f"event.event_{i}", "notTriggered")
        out.append(
            {
                "logic": "AND",
                "groups": [{"filters": [quiet, _filter("subscribed", "equals", True)]}],
            }
        )
    return out


def _drop_bench_segments(project) -> None:
    """Every segment of the project goes (the seeded data set has none; any left by an
    interrupted run would be measured along), and the entry/exit events of the bench's."""
    from plunk_events.models import Event, Segment

    Segment.objects.filter(project=project).delete()
    Event.objects.filter(project=project, name__startswith="segment.bench-segment").delete()


def _segments(project, conditions: list[dict], *, tracked: bool = True) -> list:
    from plunk_events.models import Segment

    return [
        Segment.objects.create(
            project=project,
            name=f"{BENCH_SEGMENT} {i}",
            condition=condition,
            track_membership=tracked,
        )
        for i, condition in enumerate(conditions)
    ]


def measure_compute(bench: Bench) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from plunk_events.services import segments

    _drop_bench_segments(bench.big)
    [segment] = _segments(bench.big, [COMPUTE_CONDITION])
    runs = {}
    for label in ("first", "again"):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            result = segments.compute(segment)
            seconds = time.perf_counter() - t0
        statements = [q for q in ctx.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
        changed = result["added"] + result["removed"]
        runs[label] = {
            **result,
            "seconds": seconds,
            "statements": len(statements),
            "per_1000": 1000 * len(statements) / changed if changed else None,
        }
    _drop_bench_segments(bench.big)
    return runs


def _explain_ms(sql: str) -> tuple[float, float]:
    """Planning and execution time of one statement, unprepared (as the app sends it)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else plan
    return plan["Planning Time"], plan["Execution Time"]


def measure_reevaluate(bench: Bench) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from plunk_events.services import segments

    _drop_bench_segments(bench.big)
    _segments(bench.big, twenty_conditions())
    contact = bench.typical_contact
    segments.reevaluate(bench.big, [contact])  # enter what it matches; then steady state
    walls = []
    for _ in range(5):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            result = segments.reevaluate(bench.big, [contact])
            walls.append((time.perf_counter() - t0) * 1e3)
    assert (result.entered, result.exited) == (0, 0)
    sqls = [q["sql"] for q in ctx.captured_queries]
    db_ms, method = bench.db_time(sqls, bench.sizes.db_seconds)
    planning = execution = 0.0
    for _ in range(3):  # warm
        timings = [_explain_ms(sql) for sql in sqls]
    planning = sum(p for p, _ in timings)
    execution = sum(e for _, e in timings)
    _drop_bench_segments(bench.big)
    return {
        "statements": len(sqls),
        "db_ms": db_ms,
        "db_method": method,
        "planning_ms": planning,
        "execution_ms": execution,
        "wall_ms": statistics.median(walls),
        "sql": sqls,
    }


class Worker:
    """``manage.py db_worker`` with the bench settings (the documented worker)."""

    def __init__(self, env: dict, root):
        self.env, self.root = env, root
        self.proc = None

    def __enter__(self) -> Worker:
        cmd = [sys.executable, "manage.py", "db_worker", "--interval", "0.2"]
        cmd += ["--no-startup-delay", "--no-reload"]
        # Its log goes to a file: an undrained pipe fills up and stops the worker mid-run.
        self.log = tempfile.NamedTemporaryFile(prefix="plunk-bench-worker-", suffix=".log")
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60  # measured work starts once the worker polls
        while b"Starting worker" not in Path(self.log.name).read_bytes():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"db_worker did not start; see {self.log.name}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _dispatch_backlog(project) -> float | None:
    """Seconds between the project's newest event and the segment cursor (None: no cursor)."""
    from plunk_events.models import Event, EventCursor

    cursor = EventCursor.objects.filter(project=project, consumer="segments").first()
    newest = Event.objects.filter(project=project).order_by("-created_at").first()
    if cursor is None or newest is None:
        return None
    return max(0.0, (newest.created_at - cursor.created_at).total_seconds())


def _skip_to_newest(project) -> None:
    """Move the segment cursor past the events a compute just covered (tracks made while the
    segments were not tracked), so the measured run dispatches only its own events."""
    from plunk_events.models import Event, EventCursor
    from plunk_events.services import dispatch

    newest = Event.objects.filter(project=project).order_by("-created_at", "-id").first()
    position = dispatch.cursor("default", project.pk, "segments", newest.created_at)
    EventCursor.objects.filter(pk=position.pk).update(
        created_at=newest.created_at, event_id=newest.id
    )


def alternate_tracks(bench: Bench, server, *, wrk, headers, switch) -> dict[str, list[dict]]:
    """Three rounds of the track load "without" and "with" the feature, in alternating order;
    ``switch(variant)`` turns it off or on before each run. Returns wrk's results per variant."""
    from plunk_events.conf import conf

    s = bench.sizes
    kw = {
        "connections": 16,
        "script": "track",
        "script_args": bench.track_args(),
        "headers": headers,
    }
    results: dict[str, list[dict]] = {"without": [], "with": []}
    for round_ in range(3):
        for variant in ["without", "with"] if round_ % 2 == 0 else ["with", "without"]:
            switch(variant)
            time.sleep(conf.API_KEY_CACHE_SECONDS + 1)  # the workers' key caches forget
            wrk(server.base + "/v1/track", seconds=s.warm, **kw)
            results[variant].append(wrk(server.base + "/v1/track", seconds=s.ratio_seconds, **kw))
    return results


def throughput(results: dict[str, list[dict]]) -> dict:
    """Runs, medians and the with/without ratio of :func:`alternate_tracks`' results."""
    runs = {k: [r["rps"] for r in v] for k, v in results.items()}
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"runs": runs, "median": med, "ratio": med["with"] / med["without"]}


def variant_table(r, track: dict, labels: tuple[str, str], *, num) -> None:
    r.table(
        ["Variant", "Median events/s", "Runs"],
        [
            [name, num(track["median"][key]), " / ".join(num(x) for x in track["runs"][key])]
            for name, key in zip(labels, ("without", "with"), strict=True)
        ],
    )


def measure_track_with_segments(bench: Bench, *, wrk, Gunicorn, headers, root) -> dict:
    from django_tasks_db.models import DBTaskResult

    from plunk_events.models import Segment
    from plunk_events.services import segments

    _drop_bench_segments(bench.big)
    five = _segments(bench.big, twenty_conditions()[:5], tracked=False)
    DBTaskResult.objects.all().delete()  # an earlier run's leftovers would hold the worker up

    def switch(variant: str) -> None:
        Segment.objects.filter(pk__in=[x.pk for x in five]).update(
            track_membership=variant == "with"
        )
        if variant == "with":
            for segment in five:  # members as of now; the run keeps them current
                segments.compute(Segment.objects.get(pk=segment.pk))
            _skip_to_newest(bench.big)

    with Worker(bench.env, root), Gunicorn(bench.env) as server:
        results = alternate_tracks(bench, server, wrk=wrk, headers=headers, switch=switch)
        deadline = time.monotonic() + 60
        backlog = _dispatch_backlog(bench.big)
        while backlog is not None and backlog > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
            backlog = _dispatch_backlog(bench.big)
        caught_up_s = 60 - (deadline - time.monotonic())
    tasks = DBTaskResult.objects.count()
    # Correct as well as fast: a full compute afterwards changes nothing.
    Segment.objects.filter(pk__in=[x.pk for x in five]).update(track_membership=True)
    drift = sum(
        r["added"] + r["removed"]
        for r in (segments.compute(Segment.objects.get(pk=x.pk)) for x in five)
    )
    _drop_bench_segments(bench.big)
    return {
        **throughput(results),
        "tasks": tasks,
        "tracked_tracks": sum(r["ok"] for r in results["with"]),
        "caught_up_s": caught_up_s,
        "drift": drift,
    }


def report(bench: Bench, compute: dict, reevaluate: dict, track: dict, *, ms, num) -> None:
    r = bench.report
    first, again = compute["first"], compute["again"]
    r.add(
        "## 5. Segment engine",
        "",
        f"Big project ({num(bench.big_contacts)} contacts). Full compute of a tracked segment "
        '`event.event_1 triggeredWithin 30 days AND data.plan equals "pro"`, in-process, '
        "statements counted with Django's query capture (transaction control excluded):",
        "",
    )
    r.table(
        ["Compute", "Entered", "Exited", "Time", "Statements", "Per 1,000 changed"],
        [
            [
                label,
                num(run["added"]),
                num(run["removed"]),
                f"{run['seconds']:.2f} s",
                run["statements"],
                "–" if run["per_1000"] is None else f"{run['per_1000']:.2f}",
            ]
            for label, run in (("first (all enter)", first), ("again (no change)", again))
        ],
    )
    r.add(
        f"Re-evaluating one contact ({bench.typical_count} events) against 20 tracked segments: "
        f"{reevaluate['statements']} statements, database time **{ms(reevaluate['db_ms'])}** "
        f"(pgbench `-M prepared`, as every DB-time row); sent unprepared as the app does, "
        f"planning {ms(reevaluate['planning_ms'])} + execution "
        f"{ms(reevaluate['execution_ms'])} (`EXPLAIN ANALYZE`); wall time in the process "
        f"{ms(reevaluate['wall_ms'])} (median of 5).",
        "",
        "Track throughput with 5 tracked DYNAMIC segments in the project against none: same "
        "gunicorn, `manage.py db_worker --interval 0.2` running in both, `wrk -c16` "
        f"-d{bench.sizes.ratio_seconds}s after a warm-up, alternating, medians of three.",
        "",
    )
    variant_table(r, track, ("no tracked segments", "5 tracked"), num=num)
    r.add(
        f"With / without: **{100 * track['ratio']:.0f}%**. Dispatch tasks enqueued: "
        f"{num(track['tasks'])} for {num(track['tracked_tracks'])} tracks into the project with "
        f"tracked segments; the worker had read every event {track['caught_up_s']:.1f} s after "
        f"the last run; a full compute afterwards changed {track['drift']} memberships "
        "(0: the incremental path kept them exact).",
        "",
    )
