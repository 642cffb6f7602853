"""``IDEMPOTENCY_REPLAY`` (issue 12): a repeat of a request with the same Idempotency-Key gets
the first response again, byte for byte, and writes nothing; a different request with the key
still gets the 409, and with the setting off everything is Plunk's 409 (tests/api/test_track.py)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from plunk_events.models import Contact, Event, IdempotencyKey
from plunk_events.services.idempotency import REPLAY_MAX_BYTES
from tests.concurrency import run_at_once

from .helpers import assert_error, counts, track

REPLAY = override_settings(PLUNK_EVENTS={"IDEMPOTENCY_REPLAY": True})
VALID = {"email": "user@example.com", "event": "paid", "data": {"plan": "pro"}}
KEY = {"HTTP_IDEMPOTENCY_KEY": "order-1"}
REPLAYED = "Idempotent-Replayed"


def batch(client, events, **headers):
    return client.post("/v1/track/batch", {"events": events}, format="json", **headers)


def first_and_repeat(response, repeat):
    """Both 200 with the same bytes; the first says it is not a replay, the repeat that it is."""
    assert response.status_code == 200, response.content
    assert repeat.status_code == 200, repeat.content
    assert repeat.content == response.content
    assert repeat["Content-Type"] == response["Content-Type"] == "application/json"
    assert (response[REPLAYED], repeat[REPLAYED]) == ("false", "true")


def assert_key_reused(response, reason: str, original: str = "POST /v1/track") -> dict:
    messages = {
        "different_request": "with a different request (method, path or body)",
        "not_replayable": "and its response cannot be replayed",
    }
    body = assert_error(
        response,
        409,
        "IDEMPOTENCY_KEY_REUSED",
        f'Idempotency-Key "order-1" has already been used {messages[reason]}',
        details={
            "key": "order-1",
            "originalRequest": original,
            "originalRequestAt": response.json()["error"]["details"]["originalRequestAt"],
            "originalStatusCode": 200,
            "reason": reason,
        },
    )
    assert response[REPLAYED] == "false"
    return body


@pytest.mark.django_db
class TestReplay:
    @pytest.fixture(autouse=True)
    def _replay(self, settings):
        settings.PLUNK_EVENTS = {"IDEMPOTENCY_REPLAY": True}

    def test_a_repeat_gets_the_first_response_byte_for_byte_and_writes_nothing(self, pk, project):
        first = track(pk, VALID, **KEY)
        contact = Contact.objects.get(project=project)
        repeat = track(pk, VALID, **KEY)
        first_and_repeat(first, repeat)
        data = repeat.json()["data"]
        event = Event.objects.get(project=project)
        assert data["event"] == str(event.id) and data["contact"] == str(contact.id)
        assert counts(project) == (1, 1)
        assert Contact.objects.get(project=project).updated_at == contact.updated_at

    def test_a_replay_only_reads(self, pk, project):
        first = track(pk, VALID, **KEY)
        with CaptureQueriesContext(connection) as queries:
            repeat = track(pk, VALID, **KEY)
        first_and_repeat(first, repeat)
        statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
        assert statements and set(statements) <= {"SELECT"}, queries.captured_queries

    def test_storing_the_response_costs_one_statement(
        self, pk, project, django_assert_max_num_queries
    ):
        assert track(pk, VALID).status_code == 200  # warm up: the contact exists
        # As without replay (tests/api/test_track.py: at most 8), plus the claim's UPDATE.
        with django_assert_max_num_queries(9):
            assert track(pk, VALID, **KEY).status_code == 200

    def test_the_stored_response_is_replayed_not_recomputed(self, pk, project):
        """Later writes to the contact do not change what a repeat answers."""
        first = track(pk, VALID, **KEY)
        assert track(pk, {**VALID, "subscribed": False}).status_code == 200
        claim = IdempotencyKey.objects.get(project=project, key="order-1")
        assert bytes(claim.response_body) == first.content
        assert claim.response_content_type == "application/json"
        first_and_repeat(first, track(pk, VALID, **KEY))
        assert counts(project) == (1, 3)  # paid, the unsubscribe's event and its system event

    def test_a_different_body_is_409_saying_the_request_differs(self, pk, project):
        assert track(pk, VALID, **KEY).status_code == 200
        assert_key_reused(track(pk, {**VALID, "event": "refunded"}, **KEY), "different_request")
        assert counts(project) == (1, 1)

    def test_the_fingerprint_is_the_raw_body(self, pk, project):
        """The same JSON sent with other whitespace is another request: the bytes are hashed."""
        assert track(pk, VALID, **KEY).status_code == 200
        spaced = json.dumps(VALID, indent=2)
        response = pk.post("/v1/track", spaced, content_type="application/json", **KEY)
        assert_key_reused(response, "different_request")
        assert counts(project) == (1, 1)

    def test_the_same_body_on_the_other_route_is_409(self, pk, project):
        body = {"events": [VALID]}
        assert pk.post("/v1/track/batch", body, format="json", **KEY).status_code == 200
        response = pk.post("/v1/track", body, format="json", **KEY)
        assert_key_reused(response, "different_request", original="POST /v1/track/batch")
        assert counts(project) == (1, 1)

    def test_every_repeat_gets_the_same_bytes(self, pk, project):
        first = track(pk, VALID, **KEY)
        for _ in range(3):
            first_and_repeat(first, track(pk, VALID, **KEY))
        assert counts(project) == (1, 1)

    def test_a_4xx_frees_the_key_and_the_valid_retry_is_then_replayed(self, pk, project):
        bad = track(pk, {**VALID, "email": "nope"}, **KEY)
        assert bad.status_code == 422 and bad[REPLAYED] == "false"
        assert not IdempotencyKey.objects.exists()
        first = track(pk, VALID, **KEY)
        first_and_repeat(first, track(pk, VALID, **KEY))
        assert counts(project) == (1, 1)

    def test_a_batch_repeat_replays_accepted_and_rejected_items(self, pk, project):
        events = [VALID, {**VALID, "email": "bad"}, {**VALID, "email": "two@example.com"}]
        first = batch(pk, events, **KEY)
        assert first.json()["accepted"] == 2 and first.json()["rejected"] == 1
        first_and_repeat(first, batch(pk, events, **KEY))
        assert counts(project) == (2, 2)

    def test_a_response_over_64_kb_is_not_stored_and_a_repeat_is_409(self, pk, project):
        events = [{"email": f"user{i}@example.com", "event": "e"} for i in range(500)]
        first = batch(pk, events, **KEY)
        assert first.status_code == 200 and first[REPLAYED] == "false"
        assert len(first.content) > REPLAY_MAX_BYTES
        claim = IdempotencyKey.objects.get(project=project, key="order-1")
        assert claim.response_body is None and claim.request_sha256
        assert_key_reused(batch(pk, events, **KEY), "not_replayable", "POST /v1/track/batch")
        assert counts(project) == (500, 500)

    def test_a_claim_made_without_replay_is_409(self, pk, project, settings):
        settings.PLUNK_EVENTS = {}
        assert track(pk, VALID, **KEY).status_code == 200
        settings.PLUNK_EVENTS = {"IDEMPOTENCY_REPLAY": True}
        assert_key_reused(track(pk, VALID, **KEY), "not_replayable")
        assert counts(project) == (1, 1)

    def test_keys_are_per_project(self, pk, project, other_project, client_for):
        first = track(pk, VALID, **KEY)
        other = track(client_for(other_project.public_key), VALID, **KEY)
        assert (first.status_code, other.status_code) == (200, 200)
        assert other[REPLAYED] == "false" and other.content != first.content
        assert counts(project) == counts(other_project) == (1, 1)

    def test_without_the_header_nothing_changes(self, pk, project):
        first, second = track(pk, VALID), track(pk, VALID)
        assert REPLAYED not in first and REPLAYED not in second
        assert first.json()["data"]["event"] != second.json()["data"]["event"]
        assert not IdempotencyKey.objects.exists()

    def test_a_bad_key_is_400_without_the_header(self, pk, project):
        response = track(pk, VALID, HTTP_IDEMPOTENCY_KEY="caf\u00e9")
        assert response.status_code == 400 and REPLAYED not in response
        assert counts() == (0, 0)

    def test_browsers_may_read_the_header(self, pk, project):
        exposed = track(pk, VALID, **KEY)["Access-Control-Expose-Headers"]
        assert REPLAYED in {h.strip() for h in exposed.split(",")}


@pytest.mark.django_db
@override_settings(PLUNK_EVENTS={"IDEMPOTENCY_REPLAY": True, "IDEMPOTENCY_KEY_TTL_HOURS": 0})
def test_an_expired_key_is_a_new_request(pk, project):
    first = track(pk, VALID, **KEY)
    again = track(pk, VALID, **KEY)
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first[REPLAYED], again[REPLAYED]) == ("false", "false")
    assert first.json()["data"]["event"] != again.json()["data"]["event"]
    assert counts(project) == (1, 2)
    # The taken-over claim stores the new response, not the expired one's.
    claim = IdempotencyKey.objects.get(project=project, key="order-1")
    assert bytes(claim.response_body) == again.content


@pytest.mark.django_db
def test_with_the_setting_off_a_repeat_is_plunks_409_without_the_header(pk, project):
    first = track(pk, VALID, **KEY)
    assert first.status_code == 200 and REPLAYED not in first
    repeat = track(pk, VALID, **KEY)
    assert_error(
        repeat,
        409,
        "IDEMPOTENCY_KEY_REUSED",
        'Idempotency-Key "order-1" has already been used',
        details={
            "key": "order-1",
            "originalRequest": "POST /v1/track",
            "originalRequestAt": repeat.json()["error"]["details"]["originalRequestAt"],
            "originalStatusCode": 200,
        },
    )
    assert REPLAYED not in repeat
    claim = IdempotencyKey.objects.get(project=project, key="order-1")
    assert (claim.request_sha256, claim.response_body) == ("", None)


@pytest.mark.django_db
def test_turning_replay_off_brings_back_the_409(pk, project):
    with REPLAY:
        assert track(pk, VALID, **KEY).status_code == 200
    repeat = track(pk, VALID, **KEY)
    assert repeat.status_code == 409 and "reason" not in repeat.json()["error"]["details"]
    assert counts(project) == (1, 1)


# ---------------------------------------------------------------------------------------------
# Concurrent repeats wait for the first and replay it (PostgreSQL: the claim's row lock)


def post_from_a_thread(key: str, path: str, body: dict, headers: dict):
    try:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client.post(path, body, format="json", **headers)
    finally:
        connections.close_all()


def wait_until_blocked(table: str) -> None:
    """Until a session of this database waits for a lock in a statement on ``table``."""
    for _ in range(600):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE %s",
                [f"%{table}%"],
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing waits on {table}")


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@REPLAY
def test_a_repeat_while_the_first_runs_waits_for_it_then_replays(project):
    """The first request is held inside its transaction (its contact row is locked elsewhere);
    the repeat passes the pre-check, waits on the uncommitted claim, and replays what the first
    stored in that same transaction once it commits."""
    assert post_from_a_thread(project.public_key, "/v1/track", VALID, {}).status_code == 200
    locked, release = threading.Event(), threading.Event()

    def hold_the_contact():
        try:
            with transaction.atomic():
                Contact.objects.select_for_update().get(project=project)
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    args = (project.public_key, "/v1/track", VALID, KEY)
    with ThreadPoolExecutor(max_workers=3) as pool:
        holder = pool.submit(hold_the_contact)
        assert locked.wait(30)
        first = pool.submit(post_from_a_thread, *args)
        wait_until_blocked(Contact._meta.db_table)
        repeat = pool.submit(post_from_a_thread, *args)
        wait_until_blocked(IdempotencyKey._meta.db_table)
        release.set()
        holder.result(timeout=30)
        first, repeat = first.result(timeout=30), repeat.result(timeout=30)
    first_and_repeat(first, repeat)
    assert counts(project) == (1, 2)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@REPLAY
@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/track", VALID), ("/v1/track/batch", {"events": [VALID, {**VALID, "event": "x"}]})],
    ids=["track", "batch"],
)
def test_50_concurrent_repeats_write_once_and_answer_the_same_bytes(project, path, body):
    responses = run_at_once(lambda: post_from_a_thread(project.public_key, path, body, KEY), 50)
    assert [r.status_code for r in responses] == [200] * 50
    assert len({r.content for r in responses}) == 1
    assert sorted(r[REPLAYED] for r in responses) == ["false"] + ["true"] * 49
    events = len(body.get("events", [body]))
    assert counts(project) == (1, events)
    assert IdempotencyKey.objects.filter(project=project).count() == 1


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@REPLAY
def test_concurrent_different_requests_with_one_key_get_the_409(project):
    bodies = iter([{**VALID, "data": {"n": i}} for i in range(20)])
    responses = run_at_once(
        lambda: post_from_a_thread(project.public_key, "/v1/track", next(bodies), KEY), 20
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 19
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["details"]["reason"] == "different_request"
    assert counts(project) == (1, 1)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@REPLAY
def test_a_5xx_writes_nothing_and_frees_the_key(pk, project):
    """A track stuck behind another session's row lock past ``lock_timeout`` is a 503 that
    stored no claim; the retry is a first request, and its repeat a replay."""
    assert track(pk, VALID).status_code == 200
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        dbname=settings["NAME"],
    )
    try:
        other.execute(
            f"SELECT 1 FROM {Contact._meta.db_table} WHERE project_id = %s FOR UPDATE",
            [project.pk],
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 300")
        stuck = track(pk, {**VALID, "event": "second"}, **KEY)
        assert stuck.status_code == 503 and stuck[REPLAYED] == "false"
        assert not IdempotencyKey.objects.exists()
        assert counts(project) == (1, 1)
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    first = track(pk, {**VALID, "event": "second"}, **KEY)
    first_and_repeat(first, track(pk, {**VALID, "event": "second"}, **KEY))
    assert counts(project) == (1, 2)


def test_the_schema_documents_the_replay(client):
    schema = json.loads(client.get("/openapi.json").content)
    for path in ("/v1/track", "/v1/track/batch"):
        operation = schema["paths"][path]["post"]
        (key,) = (p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
        assert "IDEMPOTENCY_REPLAY" in key["description"]
        header = operation["responses"]["200"]["headers"][REPLAYED]
        assert header["schema"]["enum"] == ["false", "true"]
        assert "different_request" in operation["responses"]["409"]["description"]
