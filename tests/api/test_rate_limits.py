"""Rate limits (issue 7): DRF throttles per project and scope, and per client address for failed
authentications, with state in Django's cache — the local-memory cache and a real Redis."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from plunk_events.checks import check_settings

from .helpers import assert_error

pytestmark = pytest.mark.django_db

# A database of its own; only keys under a per-test prefix are written and deleted.
REDIS_URL = os.environ.get("PLUNK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TRACK = {"email": "a@example.com", "event": "signed_up"}
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
PROJECT_LIMIT = "Rate limit exceeded."
AUTH_LIMIT = "Too many failed authentication attempts from this address."


def redis_or_skip() -> None:
    """Skip when no Redis answers on 127.0.0.1:6379, except under CI=true, where it fails."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["locmem", "redis"])
def backend(request, settings):
    """Which cache holds the throttle state: the default local-memory cache, or Redis."""
    if request.param == "locmem":
        yield "locmem"
        return
    redis_or_skip()
    prefix = f"plunk-events-tests-{uuid.uuid4().hex}"
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        },
    }
    settings.PLUNK_EVENTS = {**settings.PLUNK_EVENTS, "RATE_LIMIT_CACHE": "ratelimit"}
    yield "redis"
    client = caches["ratelimit"]._cache.get_client(write=True)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def limits(settings, backend):
    """``limits(track=..., api=..., auth_failures=...)`` sets ``RATE_LIMITS``."""

    def set_limits(**rates):
        settings.PLUNK_EVENTS = {**settings.PLUNK_EVENTS, "RATE_LIMITS": rates}

    return set_limits


def track(client, **extra):
    return client.post("/v1/track", TRACK, format="json", **extra)


def rate_headers(response) -> tuple[int, int, int]:
    return tuple(int(response[name]) for name in RATE_HEADERS)


def assert_throttled(response, message: str, limit: int) -> int:
    """The 429 envelope; Retry-After equals details.retryAfter and RateLimit-Reset."""
    wait = int(response["Retry-After"])
    unit = "second" if wait == 1 else "seconds"
    assert_error(
        response,
        429,
        "RATE_LIMIT_EXCEEDED",
        f"{message} Expected available in {wait} {unit}.",
        details={"retryAfter": wait},
    )
    assert rate_headers(response) == (limit, 0, wait)
    return wait


# ---------------------------------------------------------------------------------------------
# Per project


def test_track_limit_headers_count_down_then_429(limits, pk):
    limits(track="3/minute")
    remaining = []
    for _ in range(3):
        response = track(pk)
        assert response.status_code == 200, response.content
        limit, left, reset = rate_headers(response)
        assert limit == 3 and 1 <= reset <= 60
        remaining.append(left)
    assert remaining == [2, 1, 0]
    wait = assert_throttled(track(pk), PROJECT_LIMIT, 3)
    assert 1 <= wait <= 60
    # Browsers may read the headers of the public route.
    exposed = track(pk)["Access-Control-Expose-Headers"]
    assert {"Retry-After", *RATE_HEADERS} <= {h.strip() for h in exposed.split(",")}


def test_errors_of_a_throttled_route_carry_the_headers_and_count(limits, pk, sk, project):
    limits(track="4/minute", api="3/minute")
    bad = pk.post("/v1/track", {"email": "nope", "event": "x"}, format="json")
    assert bad.status_code == 422
    assert rate_headers(bad)[:2] == (4, 3)
    ok = track(pk)
    assert ok.status_code == 200 and rate_headers(ok)[:2] == (4, 2)

    missing = sk.get(f"/contacts/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert rate_headers(missing)[:2] == (3, 2)
    invalid = sk.get("/events", {"limit": "\x00"})
    assert invalid.status_code == 422
    assert rate_headers(invalid)[:2] == (3, 1)
    listed = sk.get("/events")
    assert listed.status_code == 200 and rate_headers(listed)[:2] == (3, 0)
    assert_throttled(sk.get("/segments"), PROJECT_LIMIT, 3)


def test_batch_and_both_keys_share_the_track_limit_but_not_the_api_one(limits, pk, sk):
    limits(track="3/minute", api="2/minute")
    batch = pk.post("/v1/track/batch", {"events": [TRACK, TRACK, TRACK]}, format="json")
    assert batch.status_code == 200 and rate_headers(batch)[:2] == (3, 2)  # one request
    assert track(sk).status_code == 200  # the secret key of the same project
    assert track(pk).status_code == 200
    assert_throttled(track(sk), PROJECT_LIMIT, 3)
    assert_throttled(
        pk.post("/v1/track/batch", {"events": [TRACK]}, format="json"), PROJECT_LIMIT, 3
    )
    events = sk.get("/events")
    assert events.status_code == 200 and rate_headers(events)[:2] == (2, 1)


def test_projects_are_limited_separately(limits, project, other_project, client_for):
    limits(track="2/minute", api="2/minute")
    a_track, b_track = client_for(project.public_key), client_for(other_project.public_key)
    a_api, b_api = client_for(project.secret_key), client_for(other_project.secret_key)
    for _ in range(2):
        assert track(a_track).status_code == 200
        assert a_api.get("/events").status_code == 200
    assert track(a_track).status_code == 429
    assert a_api.get("/contacts").status_code == 429
    for expected_left in (1, 0):
        b_response = track(b_track)
        assert b_response.status_code == 200 and rate_headers(b_response)[:2] == (2, expected_left)
        b_response = b_api.get("/workflows")
        assert b_response.status_code == 200 and rate_headers(b_response)[:2] == (2, expected_left)


def test_the_limit_frees_up_after_retry_after(limits, pk):
    limits(track="2/second")
    assert track(pk).status_code == 200
    assert track(pk).status_code == 200
    wait = assert_throttled(track(pk), PROJECT_LIMIT, 2)
    assert wait == 1
    time.sleep(wait)
    response = track(pk)
    assert response.status_code == 200 and rate_headers(response)[:2] == (2, 1)


def test_none_disables_a_scope_and_its_headers(limits, pk, sk, client_for):
    limits(track=None, api="2/minute", auth_failures=None)
    for _ in range(5):
        response = track(pk)
        assert response.status_code == 200
        assert not any(name in response for name in RATE_HEADERS)
    for _ in range(5):
        response = client_for("sk_wrong").get("/events")
        assert response.status_code == 401
        assert not any(name in response for name in RATE_HEADERS)
    assert sk.get("/events").status_code == 200
    assert sk.get("/events").status_code == 200
    assert sk.get("/events").status_code == 429


def test_defaults_are_generous_and_documented_in_the_headers(backend, pk, sk, client_for):
    assert rate_headers(track(pk))[:2] == (1000, 999)
    assert rate_headers(sk.get("/events/names"))[:2] == (500, 499)
    assert rate_headers(client_for("sk_wrong").get("/events"))[:2] == (60, 59)


def test_unknown_routes_are_not_limited(limits):
    limits(api="1/minute", auth_failures="1/minute")
    for _ in range(3):
        response = APIClient().get("/v1/nothing")
        assert response.status_code == 404
        assert "RateLimit-Limit" not in response


# ---------------------------------------------------------------------------------------------
# Failed authentication, per client address


def test_failed_authentications_are_limited_per_address(
    limits, project, client_for, django_assert_num_queries
):
    limits(auth_failures="3/minute")
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    bad = client_for("sk_not_a_key")
    remaining = []
    for client in (bad, client_for(None), client_for("pk_not_a_key")):
        response = client.get("/events", **attacker)
        assert response.status_code == 401
        limit, left, reset = rate_headers(response)
        assert limit == 3 and 1 <= reset <= 60
        remaining.append(left)
    assert remaining == [2, 1, 0]

    # Over the limit, the key is not even looked up: no query, and the right key is refused too.
    with django_assert_num_queries(0):
        refused = bad.get("/events", **attacker)
    assert_throttled(refused, AUTH_LIMIT, 3)
    assert_throttled(track(client_for(project.public_key), **attacker), AUTH_LIMIT, 3)
    assert_throttled(client_for(project.secret_key).get("/events", **attacker), AUTH_LIMIT, 3)

    # Another address is unaffected, and its successes show the project's limit.
    elsewhere = {"REMOTE_ADDR": "198.51.100.1"}
    ok = client_for(project.secret_key).get("/events", **elsewhere)
    assert ok.status_code == 200 and rate_headers(ok)[:2] == (500, 499)
    failed = bad.get("/events", **elsewhere)
    assert failed.status_code == 401 and rate_headers(failed)[:2] == (3, 2)


def test_successful_requests_do_not_count_as_failures(limits, pk, client_for):
    limits(auth_failures="2/minute")
    for _ in range(5):
        assert track(pk).status_code == 200
    assert client_for("pk_wrong").post("/v1/track", TRACK, format="json").status_code == 401
    assert client_for("pk_wrong").post("/v1/track", TRACK, format="json").status_code == 401
    assert track(pk).status_code == 429


def test_x_forwarded_for_is_not_trusted(limits, client_for):
    limits(auth_failures="2/minute")
    for n in range(2):
        response = client_for("sk_x").get("/events", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        assert response.status_code == 401
    response = client_for("sk_x").get("/events", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert_throttled(response, AUTH_LIMIT, 2)


# ---------------------------------------------------------------------------------------------
# The cache backend


def test_state_lives_in_the_configured_cache(backend, limits, pk, project, settings):
    limits(track="5/minute")
    assert track(pk).status_code == 200
    alias = settings.PLUNK_EVENTS.get("RATE_LIMIT_CACHE", "default")
    history = caches[alias].get(f"plunk_events:throttle:track:{project.pk}")
    assert isinstance(history, list) and len(history) == 1
    if backend == "redis":
        client = caches[alias]._cache.get_client()
        prefix = settings.CACHES[alias]["KEY_PREFIX"]
        assert [k.decode() for k in client.scan_iter(f"{prefix}:*")] == [
            f"{prefix}:1:plunk_events:throttle:track:{project.pk}"
        ]
        assert 0 < client.ttl(f"{prefix}:1:plunk_events:throttle:track:{project.pk}") <= 60


def test_an_unreachable_cache_leaves_requests_unlimited(settings, pk, client_for, caplog):
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        },
    }
    settings.PLUNK_EVENTS = {"RATE_LIMIT_CACHE": "down", "RATE_LIMITS": {"track": "1/minute"}}
    for _ in range(2):
        response = track(pk)
        assert response.status_code == 200
        assert "RateLimit-Limit" not in response
    failed = client_for("pk_wrong").post("/v1/track", TRACK, format="json")
    assert failed.status_code == 401 and "RateLimit-Limit" not in failed
    assert "Rate limit 'track' not applied, its cache failed" in caplog.text
    assert "Rate limit 'auth_failures' not applied" in caplog.text


# ---------------------------------------------------------------------------------------------
# Settings checks and the schema


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"RATE_LIMITS": {"track": "100/minute", "api": None, "auth_failures": "5/h"}}, []),
        ({"RATE_LIMITS": {"track": "lots"}}, ["plunk_events.E010"]),
        ({"RATE_LIMITS": {"api": "0/second"}}, ["plunk_events.E010"]),
        ({"RATE_LIMITS": {"api": "10/fortnight"}}, ["plunk_events.E010"]),
        ({"RATE_LIMITS": {"api": 100}}, ["plunk_events.E010"]),
        ({"RATE_LIMITS": {"everything": "1/s"}}, ["plunk_events.E010"]),
        ({"RATE_LIMITS": ["track"]}, ["plunk_events.E010"]),
        ({"RATE_LIMIT_CACHE": "nowhere"}, ["plunk_events.E011"]),
    ],
)
def test_rate_limit_settings_are_checked(settings, value, expected):
    settings.PLUNK_EVENTS = value
    problems = check_settings()
    assert sorted(p.id for p in problems) == expected
    for problem in problems:
        assert problem.hint


def test_a_bad_rate_names_the_syntax_in_its_hint(settings):
    settings.PLUNK_EVENTS = {"RATE_LIMITS": {"track": "1000 per second"}}
    (problem,) = check_settings()
    assert "'track'" in problem.msg and "N/period" in problem.hint


def test_every_operation_documents_the_429():
    schema = json.loads(APIClient().get("/openapi.json").content)
    operations = [op for ops in schema["paths"].values() for op in ops.values()]
    assert len(operations) >= 20
    for operation in operations:
        response = operation["responses"]["429"]
        ref = response["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
        assert "RateLimit-Remaining" in response["description"]
