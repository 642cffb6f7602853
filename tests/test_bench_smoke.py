"""Seconds-long correctness smoke of the benchmark tooling (``bench/``, ``plunk_seed``).

CI runs this, never the timings: the seeded data set has the promised shape and its counts add
up, names and stats equal a plain ``GROUP BY``, and concurrent ingest loses no JSON keys and
stores exactly the events it acknowledged.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.db.models import Count, Max, Min
from django.test import Client
from django.utils import timezone

from bench.management.commands.plunk_seed import SYSTEM_NAMES, split
from plunk_events.constants import is_system_event
from plunk_events.models import Contact, Event, Project
from plunk_events.services import rollups
from plunk_events.services.projects import regenerate_keys


def seed(*args: str) -> str:
    out = StringIO()
    call_command("plunk_seed", *args, stdout=out)
    return out.getvalue()


def plain_counts(project, start=None) -> dict[str, int]:
    events = Event.objects.filter(project=project)
    if start is not None:
        events = events.filter(created_at__gte=start)
    return dict(events.values_list("name").annotate(n=Count("id")).order_by())


def timeline(project) -> list[tuple]:
    """What the seed decides, in time order (ids and instants depend on the clock)."""
    return list(
        Event.objects.filter(project=project)
        .order_by("created_at", "id")
        .values_list("name", "contact__email", "data")
    )


def test_split_gives_the_big_project_its_share():
    assert split(1_000_000, 11, 0.9) == [900_000] + [10_000] * 10
    assert split(7, 3, 0.5) == [4, 2, 1]
    assert split(5, 1, 0.9) == [5]


@pytest.mark.django_db
def test_seeded_counts_add_up_and_match_a_plain_group_by(client_for):
    output = seed(
        "--events", "3000", "--contacts", "300", "--names", "30", "--projects", "3",
        "--days", "30", "--seed", "7",
    )  # fmt: skip
    assert "Seeded 3,000 events" in output
    projects = list(Project.objects.filter(name__startswith="seed-").order_by("name"))
    assert [p.name for p in projects] == ["seed-01", "seed-02", "seed-03"]
    assert [Event.objects.filter(project=p).count() for p in projects] == [2700, 150, 150]
    assert [Contact.objects.filter(project=p).count() for p in projects] == [270, 15, 15]

    allowed = {f"event_{rank}" for rank in range(1, 31)} | set(SYSTEM_NAMES)
    now = timezone.now()
    for project in projects:
        plain = plain_counts(project)
        assert set(plain) <= allowed
        assert sum(plain.values()) == Event.objects.filter(project=project).count()
        assert dict(rollups.event_counts(project)) == plain
        api = client_for(regenerate_keys(project).secret_key)  # stored hashed: a fresh one
        names = api.get("/events/names").json()["eventNames"]
        assert names == [name for name, _ in rollups.ranked(Counter(plain))]
        start = now - timedelta(days=10)
        stats = api.get("/events/stats", {"startDate": start.isoformat()}).json()
        assert {row["name"]: row["count"] for row in stats} == plain_counts(project, start)
        span = Event.objects.filter(project=project).aggregate(
            first=Min("created_at"), last=Max("created_at")
        )
        assert now - timedelta(days=30, minutes=1) <= span["first"] <= span["last"] <= now

    big = projects[0]
    plain = plain_counts(big)
    custom = Counter({n: c for n, c in plain.items() if not is_system_event(n)})
    assert custom.most_common(1)[0][0] == "event_1"  # Zipf: rank 1 is the most frequent
    assert 0 < sum(plain.get(n, 0) for n in SYSTEM_NAMES) < 0.1 * 2700
    busiest = (
        Event.objects.filter(project=big)
        .values_list("contact__email")
        .annotate(n=Count("id"))
        .order_by("-n")[0][0]
    )
    assert busiest in {f"user{k}@example.com" for k in (1, 2, 3)}  # skewed towards low k


@pytest.mark.django_db
def test_seed_is_reproducible_and_append_adds_an_exact_bulk_name():
    common = ["--events", "400", "--contacts", "40", "--names", "10", "--projects", "2"]
    seed(*common, "--seed", "3", "--prefix", "a")
    seed(*common, "--seed", "3", "--prefix", "b")
    seed(*common, "--seed", "4", "--prefix", "c")
    a, b, c = (Project.objects.get(name=f"{p}-01") for p in "abc")
    assert timeline(a) == timeline(b)
    assert timeline(a) != timeline(c)

    with pytest.raises(CommandError, match="already exists"):
        seed(*common, "--prefix", "a")
    seed(*common[2:], "--events", "0", "--prefix", "a", "--append",
         "--bulk-name", "bulk", "--bulk-events", "250")  # fmt: skip
    assert Event.objects.filter(project=a, name="bulk").count() == 250
    assert rollups.event_counts(a)["bulk"] == 250
    assert dict(rollups.event_counts(a)) == plain_counts(a)


def _hammer(project, n_threads: int = 8, per_thread: int = 12, track_path: str = "/v1/track"):
    """Threads fire tracks and small batches at a few shared emails, each adding its own keys.

    Returns the acknowledged event count and the keys each email was sent.
    """
    emails = [f"race{i}@example.com" for i in range(4)]
    barrier = threading.Barrier(n_threads)
    acked = Counter()
    sent: dict[str, set] = {e: set() for e in emails}
    lock = threading.Lock()
    failures: list = []

    def worker(t: int) -> None:
        client = Client()
        auth = {"HTTP_AUTHORIZATION": f"Bearer {project.public_key}"}
        try:
            barrier.wait()
            for i in range(per_thread):
                email = emails[(t + i) % len(emails)]
                key = f"t{t}_{i}"
                if t % 2:
                    body = {"event": "smoke", "email": email, "data": {key: i}}
                    response = client.post(track_path, body, "application/json", **auth)
                    accepted = 1 if response.status_code == 200 else 0
                else:
                    items = [
                        {"event": "smoke", "email": emails[(t + i + j) % len(emails)],
                         "data": {f"{key}_{j}": j}}
                        for j in range(3)
                    ]  # fmt: skip
                    response = client.post(
                        "/v1/track/batch", {"events": items}, "application/json", **auth
                    )
                    accepted = response.json().get("accepted", 0)
                with lock:
                    if response.status_code != 200:
                        failures.append((response.status_code, response.content[:200]))
                        continue
                    acked["events"] += accepted
                    if t % 2:
                        sent[email].add(key)
                    else:
                        for j, item in enumerate(items):
                            sent[item["email"]].add(f"{key}_{j}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return acked["events"], sent, failures


# SQLite's in-memory test database uses a shared cache whose table locks are not retried, so
# concurrent writers get 503 there; a file database queues them (IMMEDIATE transactions).
@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingest_loses_no_keys_and_stores_what_it_acknowledged():
    project = Project.objects.create(name="Race")
    acked, sent, failures = _hammer(project)
    assert failures == []
    assert acked == 4 * 12 + 4 * 12 * 3
    assert Event.objects.filter(project=project, name="smoke").count() == acked
    contacts = {c.email: c for c in Contact.objects.filter(project=project)}
    assert sorted(contacts) == sorted(sent)  # one contact per email, no duplicates
    for email, keys in sent.items():
        assert set(contacts[email].data) == keys, email
