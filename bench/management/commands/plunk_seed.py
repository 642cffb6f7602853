"""``manage.py plunk_seed``: a reproducible synthetic data set, written through the event store.

The shape is the benchmark's (BENCHMARKS.md, "Data set"): most events in one big project, event
names with Zipf-distributed frequencies, a few very active contacts and many quiet ones,
timestamps ascending over the last ``--days`` days, and a sprinkle of system events. The same
arguments and ``--seed`` give the same rows (timestamps are relative to now).
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connections, router
from django.utils import timezone

from bench import seeding
from plunk_events.models import Contact, Event, EventDailyCount, EventNameTotal, Project
from plunk_events.services import contacts, importer, rollups
from plunk_events.services.projects import create_project

SYSTEM_NAMES = ["email.sent", "email.delivery", "email.open", "email.click"]  # sent by Plunk
#: Rows per ``importer.import_events`` call on the portable path.
IMPORT_CHUNK = 20_000


@dataclass
class Plan:
    """What one project gets."""

    index: int
    name: str
    events: int
    contacts: int


def split(total: int, parts: int, big_share: float) -> list[int]:
    """``big_share`` of ``total`` to the first part, the rest evenly over the others."""
    if parts == 1:
        return [total]
    big = round(total * big_share)
    rest = total - big
    small = [rest // (parts - 1) + (1 if i < rest % (parts - 1) else 0) for i in range(parts - 1)]
    return [big, *small]


def zipf_weights(count: int, s: float) -> list[float]:
    return [1 / rank**s for rank in range(1, count + 1)]


def seed_value(seed: int, index: int) -> float:
    """A ``setseed`` value in [-1, 1] for one project, derived from ``--seed``."""
    return random.Random(f"{seed}:{index}").uniform(-1, 1)


class Command(BaseCommand):
    help = (
        "Generate a reproducible benchmark data set (Zipf names, skewed contacts, N days) "
        "through the event store."
    )

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=100_000, help="Events in total.")
        parser.add_argument("--contacts", type=int, default=10_000, help="Contacts in total.")
        parser.add_argument("--names", type=int, default=200, help="Distinct custom event names.")
        parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of names.")
        parser.add_argument("--projects", type=int, default=11)
        parser.add_argument("--days", type=int, default=90, help="Events span the last N days.")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--big-share",
            type=float,
            default=0.9,
            help="Share of events and contacts in the first (big) project.",
        )
        parser.add_argument(
            "--system-share", type=float, default=0.03, help="Share of email.* system events."
        )
        parser.add_argument("--prefix", default="seed", help="Project names: <prefix>-01 …")
        parser.add_argument(
            "--bulk-name",
            help="Also add --bulk-events events of this one name to the big project "
            "(for delete benchmarks).",
        )
        parser.add_argument("--bulk-events", type=int, default=0)
        parser.add_argument(
            "--append",
            action="store_true",
            help="Add to the existing <prefix>-NN projects (same --contacts/--projects) "
            "instead of creating them.",
        )
        parser.add_argument(
            "--method",
            choices=["auto", "sql", "import"],
            default="auto",
            help="sql: generate inside PostgreSQL (fast); import: Python rows through "
            "importer.import_events (any database); auto: sql on PostgreSQL.",
        )
        parser.add_argument("--json", action="store_true", help="End with one JSON line.")

    def handle(self, *args, **opts):
        began = time.monotonic()
        connection = connections[router.db_for_write(Event)]
        method = opts["method"]
        if method == "auto":
            method = "sql" if connection.vendor == "postgresql" else "import"
        if method == "sql" and connection.vendor != "postgresql":
            raise CommandError("--method sql needs PostgreSQL")
        if opts["projects"] < 1 or opts["names"] < 1 or opts["contacts"] < 1:
            raise CommandError("--projects, --names and --contacts must be at least 1")

        count = opts["projects"]
        events = split(opts["events"], count, opts["big_share"])
        contacts = [max(1, n) for n in split(opts["contacts"], count, opts["big_share"])]
        plans = [
            Plan(i, f"{opts['prefix']}-{i + 1:02d}", events[i], contacts[i]) for i in range(count)
        ]
        projects = self.projects(plans, append=opts["append"])

        end = timezone.now().replace(microsecond=0)
        start = end - timedelta(days=opts["days"])
        names = [f"event_{rank}" for rank in range(1, opts["names"] + 1)]
        weights = zipf_weights(opts["names"], opts["zipf"])
        jobs = [
            (plan, names, weights, opts["system_share"], seed_value(opts["seed"], plan.index))
            for plan in plans
            if plan.events
        ]
        if opts["bulk_name"] and opts["bulk_events"] > 0:
            bulk = Plan(plans[0].index, plans[0].name, opts["bulk_events"], plans[0].contacts)
            jobs.append((bulk, [opts["bulk_name"]], [1.0], 0.0, seed_value(opts["seed"], -1)))

        written = 0
        for plan, job_names, job_weights, system_share, seed in jobs:
            project = projects[plan.index]
            t0 = time.monotonic()
            if method == "sql":
                n = seeding.seed_events_sql(
                    project,
                    events=plan.events,
                    contacts=plan.contacts,
                    names=job_names,
                    weights=job_weights,
                    start=start,
                    end=end,
                    seed=seed,
                    system_names=SYSTEM_NAMES,
                    system_share=system_share,
                )
            else:
                n = self.import_rows(
                    project, plan, job_names, job_weights, system_share, seed, start, end
                )
            written += n
            if opts["verbosity"] >= 2:
                self.stdout.write(
                    f"  {plan.name}: {n} events of {len(job_names)} name(s) "
                    f"in {time.monotonic() - t0:.1f} s"
                )
        generated = time.monotonic()

        for project in projects:
            rollups.rollup(project)
        rolled = time.monotonic()
        if connection.vendor == "postgresql":
            tables = ", ".join(
                connection.ops.quote_name(m._meta.db_table)
                for m in (Project, Contact, Event, EventDailyCount, EventNameTotal)
            )
            # VACUUM cannot run inside a transaction (e.g. a test case): ANALYZE alone can.
            vacuum = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
            with connection.cursor() as cursor:
                cursor.execute(f"{vacuum} {tables}")
        done = time.monotonic()

        self.stdout.write(
            f"Seeded {written:,} events for {sum(p.contacts for p in plans):,} contacts in "
            f"{len(plans)} projects ({method}) in {done - began:.1f} s: generate "
            f"{generated - began:.1f} s, rollup {rolled - generated:.1f} s, "
            f"vacuum analyze {done - rolled:.1f} s"
        )
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "events": written,
                        "seconds": round(done - began, 2),
                        "method": method,
                        "projects": [
                            {
                                "id": str(p.pk),
                                "name": p.name,
                                "events": plan.events,
                                "contacts": plan.contacts,
                                "public_key": p.public_key,
                                # null for --append: an existing key is stored hashed
                                "secret_key": getattr(p, "secret_key", None),
                            }
                            for p, plan in zip(projects, plans, strict=True)
                        ],
                    }
                )
            )

    def projects(self, plans: list[Plan], *, append: bool) -> list[Project]:
        existing = {p.name: p for p in Project.objects.filter(name__in=[p.name for p in plans])}
        if append:
            missing = [p.name for p in plans if p.name not in existing]
            if missing:
                raise CommandError(f"--append: no project named {missing[0]!r}")
            return [existing[p.name] for p in plans]
        if existing:
            raise CommandError(
                f"Project {sorted(existing)[0]!r} already exists; use --append or another --prefix"
            )
        return [create_project(plan.name) for plan in plans]

    def import_rows(self, project, plan, names, weights, system_share, seed, start, end) -> int:
        """The portable path: the same distributions drawn in Python, through import_events."""
        rng = random.Random(seed)
        for k in range(1, plan.contacts + 1):
            if not Contact.objects.filter(project=project, email=f"user{k}@example.com").exists():
                contacts.upsert_contact(
                    project,
                    f"user{k}@example.com",
                    {"plan": rng.choice(["free", "pro", "team"]), "signup": k},
                    subscribed=rng.random() >= 0.05,
                )
        cumulative = list(itertools.accumulate(weights))
        span = end - start
        written = 0
        rows: list[dict] = []
        for i in range(plan.events):
            created_at = start + span * ((i + rng.random()) / plan.events)
            k = 1 + int(plan.contacts * rng.random() ** 2)
            if rng.random() < system_share:
                name, data = rng.choice(SYSTEM_NAMES), None
            else:
                name = names[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
                value = rng.randrange(1000)
                data = (
                    None
                    if rng.random() < 0.1
                    else {"plan": ["free", "pro", "team"][value % 3], "value": value}
                )
            rows.append(
                {
                    "email": f"user{k}@example.com",
                    "name": name,
                    "data": data,
                    "created_at": created_at,
                }
            )
            if len(rows) == IMPORT_CHUNK:
                written += importer.import_events(project, rows)
                rows = []
        if rows:
            written += importer.import_events(project, rows)
        return written
