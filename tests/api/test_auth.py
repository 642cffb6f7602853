"""Bearer-key authentication on every route: which key class each route takes, the
exact 401 envelopes, and never a 403."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.db import connection
from django.test import override_settings

from plunk_events.models import Event, Project
from plunk_events.services.projects import key_cache, regenerate_keys

from .helpers import INVALID_KEY_SUGGESTION, MISSING_AUTH_SUGGESTION, assert_error, counts

pytestmark = pytest.mark.django_db

BEARER_FORMAT = (
    'Authorization header must use Bearer token format: "Authorization: Bearer YOUR_API_KEY"'
)
INVALID_PUBLIC = (
    "Invalid public API key. Ensure you are using a public key (pk_*) for this endpoint."
)
INVALID_SECRET = (
    "Invalid secret API key. This endpoint requires a secret key (sk_*), not a public key."
)
INVALID_TRACK = "Invalid API key. This endpoint accepts a public key (pk_*) or a secret key (sk_*)."

TRACK_BODY = {"email": "a@example.com", "event": "signed_up"}

#: (method, path, JSON body) of the two routes that take the public key.
TRACK_ROUTES = [
    ("post", "/v1/track", TRACK_BODY),
    ("post", "/v1/track/batch", {"events": [TRACK_BODY]}),
]
#: Every /events route; all take the secret key only.
EVENTS_ROUTES = [
    ("get", "/events", None),
    ("get", "/events/names", None),
    ("get", "/events/stats", None),
    ("get", f"/events/contact/{uuid.UUID(int=1)}", None),
    ("get", "/events/signed_up/usage", None),
    ("delete", "/events/signed_up", None),
]
ALL_ROUTES = TRACK_ROUTES + EVENTS_ROUTES


def call(client, method, path, body):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


def client_with_header(client_for, value):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


def assert_www_authenticate(response):
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), TRACK_ROUTES)
def test_track_routes_without_header_are_missing_auth(client_for, project, method, path, body):
    response = call(client_for(None), method, path, body)
    assert_error(
        response,
        401,
        "MISSING_AUTH",
        "Authorization header is required",
        suggestion=MISSING_AUTH_SUGGESTION,
    )
    assert_www_authenticate(response)
    assert counts() == (0, 0)


@pytest.mark.parametrize(("method", "path", "body"), EVENTS_ROUTES)
def test_events_routes_without_header_are_unauthorized(client_for, project, method, path, body):
    response = call(client_for(None), method, path, body)
    assert_error(response, 401, "UNAUTHORIZED", "You need to be authenticated to do this")
    assert_www_authenticate(response)


@pytest.mark.parametrize(
    "header",
    [
        "bearer {key}",  # the scheme is case-sensitive
        "BEARER {key}",
        "Bearer {key} extra",  # three parts
        "Bearer  {key}",  # two spaces: an empty middle part
        "Bearer",  # no token
        "Bearer ",  # empty token
        "Token {key}",
        "{key}",
        "Basic dXNlcjpwYXNz",
        "Bearer {key}\u00e9",  # not ASCII
    ],
)
@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
def test_malformed_header_is_missing_auth_on_every_route(
    client_for, project, header, method, path, body
):
    key = project.public_key if path.startswith("/v1") else project.secret_key
    client = client_with_header(client_for, header.format(key=key))
    response = call(client, method, path, body)
    assert_error(response, 401, "MISSING_AUTH", BEARER_FORMAT, suggestion=MISSING_AUTH_SUGGESTION)
    assert_www_authenticate(response)
    assert counts(project) == (0, 0)


@pytest.mark.parametrize(
    ("require_public", "message"), [(False, INVALID_TRACK), (True, INVALID_PUBLIC)]
)
@pytest.mark.parametrize("key", ["pk_" + "0" * 48, "sk_" + "0" * 48, "nonsense"])
@pytest.mark.parametrize(("method", "path", "body"), TRACK_ROUTES)
def test_unknown_key_on_track_routes(
    client_for, project, key, method, path, body, require_public, message
):
    """The message names the keys the route takes under TRACK_REQUIRE_PUBLIC_KEY."""
    with override_settings(PLUNK_EVENTS={"TRACK_REQUIRE_PUBLIC_KEY": require_public}):
        response = call(client_for(key), method, path, body)
    assert_error(response, 401, "INVALID_API_KEY", message, suggestion=INVALID_KEY_SUGGESTION)
    assert_www_authenticate(response)
    assert counts() == (0, 0)


@pytest.mark.parametrize("key", ["pk_" + "0" * 48, "sk_" + "0" * 48, "nonsense"])
@pytest.mark.parametrize(("method", "path", "body"), EVENTS_ROUTES)
def test_unknown_key_on_events_routes(client_for, project, key, method, path, body):
    response = call(client_for(key), method, path, body)
    assert_error(
        response, 401, "INVALID_API_KEY", INVALID_SECRET, suggestion=INVALID_KEY_SUGGESTION
    )
    assert_www_authenticate(response)


@pytest.mark.parametrize(("method", "path", "body"), EVENTS_ROUTES)
def test_public_key_is_refused_on_every_events_route(pk, project, method, path, body):
    Event.objects.create(project=project, name="signed_up")
    response = call(pk, method, path, body)
    assert_error(
        response, 401, "INVALID_API_KEY", INVALID_SECRET, suggestion=INVALID_KEY_SUGGESTION
    )
    assert_www_authenticate(response)
    assert Event.objects.filter(name="signed_up").count() == 1  # the DELETE did nothing


@pytest.mark.parametrize(("method", "path", "body"), EVENTS_ROUTES)
def test_secret_key_is_accepted_on_every_events_route(sk, method, path, body):
    assert call(sk, method, path, body).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), TRACK_ROUTES)
def test_both_keys_are_accepted_on_track_routes_by_default(pk, sk, project, method, path, body):
    assert call(pk, method, path, body).status_code == 200
    assert call(sk, method, path, body).status_code == 200
    assert counts(project) == (1, 2)


@override_settings(PLUNK_EVENTS={"TRACK_REQUIRE_PUBLIC_KEY": True})
@pytest.mark.parametrize(("method", "path", "body"), TRACK_ROUTES)
def test_secret_key_is_refused_on_track_routes_when_public_key_required(
    pk, sk, project, method, path, body
):
    response = call(sk, method, path, body)
    assert_error(
        response, 401, "INVALID_API_KEY", INVALID_PUBLIC, suggestion=INVALID_KEY_SUGGESTION
    )
    assert_www_authenticate(response)
    assert counts(project) == (0, 0)
    assert call(pk, method, path, body).status_code == 200


def test_a_key_tracks_into_its_own_project(client_for, project, other_project):
    response = client_for(other_project.public_key).post("/v1/track", TRACK_BODY, format="json")
    assert response.status_code == 200
    assert counts(project) == (0, 0)
    assert counts(other_project) == (1, 1)


def test_keys_are_compared_exactly(client_for, project):
    """A prefix, a suffix or a case change of a real key is an unknown key."""
    for key in (project.public_key[:-1], project.public_key + "0", project.public_key.upper()):
        response = client_for(key).post("/v1/track", TRACK_BODY, format="json")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_API_KEY"


def test_a_cached_key_still_follows_the_route_rules(project, client_for):
    """The key cache remembers a project per key class: a secret key that /v1/track accepted
    is still refused once TRACK_REQUIRE_PUBLIC_KEY is on, and pk never opens /events."""
    sk = client_for(project.secret_key)
    assert sk.post("/v1/track", {"email": "a@b.co", "event": "x"}, format="json").status_code == 200
    with override_settings(PLUNK_EVENTS={"TRACK_REQUIRE_PUBLIC_KEY": True}):
        refused = sk.post("/v1/track", {"email": "a@b.co", "event": "x"}, format="json")
        assert refused.status_code == 401
    pk = client_for(project.public_key)
    assert pk.post("/v1/track", {"email": "a@b.co", "event": "x"}, format="json").status_code == 200
    assert pk.get("/events").status_code == 401


def test_regenerated_keys_stop_working_at_once_in_this_process(project, client_for):
    old = client_for(project.secret_key)
    assert old.get("/events").status_code == 200  # now cached
    regenerate_keys(project)
    assert old.get("/events").status_code == 401
    assert client_for(project.secret_key).get("/events").status_code == 200


def test_the_key_cache_saves_the_lookup(project, client_for, django_assert_num_queries):
    sk = client_for(project.secret_key)
    sk.get("/events/names")
    with django_assert_num_queries(4):  # no key lookup: watermark, totals, tail, watermark
        sk.get("/events/names")
    with (
        override_settings(PLUNK_EVENTS={"API_KEY_CACHE_SECONDS": 0}),
        django_assert_num_queries(5),
    ):
        sk.get("/events/names")


def test_secret_keys_are_stored_as_digests(project):
    """The row holds the SHA-256 of the secret key and its display prefix, never the key."""
    table = Project._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        columns = [c[0] for c in cursor.description]
        (row,) = cursor.fetchall()
    stored = dict(zip(columns, row, strict=True))
    assert "secret_key" not in stored
    assert stored["secret_key_hash"] == hashlib.sha256(project.secret_key.encode()).hexdigest()
    assert stored["secret_key_prefix"] == project.secret_key[:7]
    assert stored["public_key"] == project.public_key  # public keys stay readable
    assert not any(project.secret_key in str(value) for value in stored.values())
    with pytest.raises(AttributeError, match="stored hashed"):
        _ = Project.objects.get(pk=project.pk).secret_key


@override_settings(PLUNK_EVENTS={"API_KEY_CACHE_SECONDS": 0})
def test_both_keys_are_found_by_a_fresh_lookup(project, other_project, client_for):
    assert client_for(project.secret_key).get("/events").status_code == 200
    response = client_for(other_project.public_key).post("/v1/track", TRACK_BODY, format="json")
    assert response.status_code == 200
    assert counts(other_project) == (1, 1) and counts(project) == (0, 0)
    track = client_for(project.secret_key).post("/v1/track", TRACK_BODY, format="json")
    assert track.status_code == 200 and counts(project) == (1, 1)


@pytest.mark.parametrize(("method", "path", "body"), [TRACK_ROUTES[0], EVENTS_ROUTES[0]])
def test_the_stored_digest_is_not_a_key(project, client_for, method, path, body):
    """Whoever reads the table cannot use what is in it."""
    for stolen in (project.secret_key_hash, project.secret_key_prefix):
        response = call(client_for(stolen), method, path, body)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "INVALID_API_KEY"


@override_settings(PLUNK_EVENTS={"API_KEY_CACHE_SECONDS": 0})
def test_regenerated_secret_key_is_refused_by_the_database_lookup(project, client_for):
    old_secret, old_public = project.secret_key, project.public_key
    regenerate_keys(project)
    assert client_for(old_secret).get("/events").status_code == 401
    assert client_for(old_secret).post("/v1/track", TRACK_BODY, format="json").status_code == 401
    assert client_for(old_public).post("/v1/track", TRACK_BODY, format="json").status_code == 401
    assert client_for(project.secret_key).get("/events").status_code == 200
    assert (
        client_for(project.public_key).post("/v1/track", TRACK_BODY, format="json").status_code
        == 200
    )


def test_the_key_cache_holds_digests_not_keys(project, client_for):
    key_cache.clear()
    client_for(project.secret_key).get("/events")
    client_for(project.public_key).post("/v1/track", TRACK_BODY, format="json")
    cached = {digest for _scope, digest in key_cache._entries}
    assert cached == {
        hashlib.sha256(project.secret_key.encode()).hexdigest(),
        hashlib.sha256(project.public_key.encode()).hexdigest(),
    }
