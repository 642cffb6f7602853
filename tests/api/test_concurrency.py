"""Concurrent tracks on real PostgreSQL connections (issue 2, issue 4): no lost JSON keys, no
duplicate contacts, and an Idempotency-Key that only one request can win."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from plunk_events.models import Contact, Event, IdempotencyKey

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16


def run_concurrently(key: str, bodies: list[dict], headers: list[dict]) -> list:
    """POST each body to /v1/track from its own thread and connection, all released at once."""
    barrier = threading.Barrier(len(bodies))

    def post(index: int):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait(timeout=30)
            return client.post("/v1/track", bodies[index], format="json", **headers[index])
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, range(len(bodies))))


def test_concurrent_tracks_for_one_new_email_keep_every_key(project):
    bodies = [
        {"email": "Race@Example.com", "event": "signed_up", "data": {f"k{i}": i}}
        for i in range(THREADS)
    ]
    responses = run_concurrently(project.public_key, bodies, [{}] * THREADS)
    assert [r.status_code for r in responses] == [200] * THREADS
    contact = Contact.objects.get(project=project)
    assert contact.email == "race@example.com"
    assert contact.data == {f"k{i}": i for i in range(THREADS)}
    assert {r.json()["data"]["contact"] for r in responses} == {str(contact.id)}
    assert Event.objects.filter(project=project, name="signed_up").count() == THREADS
    assert Event.objects.filter(project=project).count() == THREADS
    assert len({r.json()["data"]["event"] for r in responses}) == THREADS


def test_concurrent_subscription_flips_emit_one_event_per_change(project):
    """Every request flips or keeps the state under the row lock: the system events match
    the sequence of states the contact went through."""
    APIClient().post(
        "/v1/track",
        {"email": "flip@example.com", "event": "seed"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {project.public_key}",
    )
    bodies = [
        {"email": "flip@example.com", "event": "x", "subscribed": bool(i % 2)}
        for i in range(THREADS)
    ]
    responses = run_concurrently(project.public_key, bodies, [{}] * THREADS)
    assert [r.status_code for r in responses] == [200] * THREADS
    names = list(
        Event.objects.filter(project=project)
        .exclude(name__in=["seed", "x"])
        .order_by("created_at", "id")
        .values_list("name", flat=True)
    )
    # Flips alternate, starting with an unsubscribe (the contact began subscribed).
    assert names == ["contact.unsubscribed", "contact.subscribed"] * (len(names) // 2) + (
        ["contact.unsubscribed"] if len(names) % 2 else []
    )
    final = Contact.objects.get(project=project).subscribed
    assert final is (len(names) % 2 == 0)


def test_concurrent_tracks_with_one_idempotency_key(project):
    bodies = [{"email": f"u{i}@example.com", "event": "paid"} for i in range(THREADS)]
    headers = [{"HTTP_IDEMPOTENCY_KEY": "charge-42"}] * THREADS
    responses = run_concurrently(project.public_key, bodies, headers)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (THREADS - 1)
    for response in responses:
        if response.status_code == 409:
            error = response.json()["error"]
            assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
            assert error["details"]["key"] == "charge-42"
            assert error["details"]["originalRequest"] == "POST /v1/track"
    assert Event.objects.filter(project=project).count() == 1
    assert Contact.objects.filter(project=project).count() == 1
    assert IdempotencyKey.objects.filter(project=project).count() == 1
