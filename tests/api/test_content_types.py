"""Bodies must be JSON in a text encoding: no decompression through ``charset``, 415 otherwise."""

from __future__ import annotations

import base64
import bz2
import json
import tracemalloc
import zlib

import pytest

from plunk_events.models import Contact, Event, Segment, Workflow

from .helpers import assert_error

pytestmark = pytest.mark.django_db

TRACK = {"email": "bomb@example.com", "event": "opened", "data": {"k": "v"}}

#: Every route that takes a body, and GET/DELETE routes sent a body anyway.
ROUTES = [
    ("post", "/v1/track", "pk"),
    ("post", "/v1/track/batch", "pk"),
    ("post", "/contacts", "sk"),
    ("patch", "/contacts/{contact}", "sk"),
    ("delete", "/contacts/{contact}", "sk"),
    ("post", "/segments", "sk"),
    ("patch", "/segments/{segment}", "sk"),
    ("post", "/workflows", "sk"),
    ("patch", "/workflows/{workflow}", "sk"),
    ("get", "/events", "sk"),
    ("get", "/events/names", "sk"),
    ("delete", "/events/opened", "sk"),
]


@pytest.fixture
def rows(project):
    contact = Contact.objects.create(project=project, email="kept@example.com")
    segment = Segment.objects.create(
        project=project, name="All", condition={"logic": "AND", "groups": []}, type="STATIC"
    )
    workflow = Workflow.objects.create(
        project=project, name="W", trigger_type="EVENT", trigger_config={"eventName": "x"}
    )
    return {"contact": contact.id, "segment": segment.id, "workflow": workflow.id}


def snapshot():
    return (
        list(Contact.objects.values_list("id", "email", "data", "subscribed").order_by("id")),
        Event.objects.count(),
        list(Segment.objects.values_list("id", "name", "condition").order_by("id")),
        list(Workflow.objects.values_list("id", "name", "enabled").order_by("id")),
    )


def send(client, method, path, raw: bytes, content_type: str):
    return client.generic(method.upper(), path, raw, content_type=content_type)


@pytest.fixture(scope="module")
def bz2_bomb() -> bytes:
    """A few hundred bytes that bz2-decompress to a 20 MB JSON document."""
    document = b'{"email": "bomb@example.com", "event": "x", "data": {"k": "' + b"a" * 20_000_000
    return bz2.compress(document + b'"}}')


def encoded_bodies(bomb: bytes) -> dict[str, bytes]:
    raw = json.dumps(TRACK).encode()
    return {
        "bz2": bomb,
        "zlib": raw,  # not compressed at all: a 500 with a traceback before
        "base64": base64.b64encode(raw),
        "hex": raw.hex().encode(),
        "rot13": json.dumps({"rznvy": "x@y.co", "rirag": "b"}).encode(),
        "uu": raw,
        "no-such-charset": raw,
    }


@pytest.mark.parametrize(
    "charset", ["bz2", "zlib", "base64", "hex", "rot13", "uu", "no-such-charset"]
)
@pytest.mark.parametrize(("method", "path", "key"), ROUTES)
def test_non_text_charsets_are_415_on_every_route(
    request, rows, bz2_bomb, method, path, key, charset
):
    client = request.getfixturevalue(key)
    before = snapshot()
    raw = encoded_bodies(bz2_bomb)[charset]
    response = send(
        client, method, path.format(**rows), raw, f"application/json; charset={charset}"
    )
    assert_error(
        response,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        f'Unsupported charset "{charset}"; JSON bodies must be UTF-8 (or UTF-16/UTF-32)',
    )
    assert snapshot() == before


def test_the_bomb_is_never_decompressed(pk, bz2_bomb):
    """The 20 MB the body would expand to is never allocated: memory stays flat."""
    assert len(bz2_bomb) < 1000 and len(bz2.decompress(bz2_bomb)) > 20_000_000
    tracemalloc.start()
    try:
        response = send(pk, "post", "/v1/track", bz2_bomb, "application/json; charset=bz2")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 415
    assert peak < 2_000_000
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "text/json",
        "application/jsonx",
    ],
)
@pytest.mark.parametrize(("method", "path", "key"), ROUTES)
def test_non_json_content_types_are_415(request, rows, method, path, key, content_type):
    client = request.getfixturevalue(key)
    before = snapshot()
    raw = json.dumps(TRACK).encode()
    response = send(client, method, path.format(**rows), raw, content_type)
    assert_error(
        response,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        f'Unsupported Content-Type "{content_type}"; send the body as application/json',
    )
    assert snapshot() == before


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/json", "utf-8"),
        ("APPLICATION/JSON; CHARSET=UTF-8", "utf-8"),
        ("application/json; charset=utf-16", "utf-16"),
        ("application/json; charset=utf-16le", "utf-16-le"),
        ("application/json; charset=utf-32", "utf-32"),
        ("application/json; charset=iso-8859-1", "latin-1"),
        ("application/vnd.api+json", "utf-8"),
        ("", "utf-8"),  # no Content-Type: read as JSON, as Plunk's clients sometimes omit it
    ],
)
def test_json_in_text_encodings_is_accepted(pk, project, content_type, encoding):
    body = {"email": "zoe@example.com", "event": "signed_up", "data": {"name": "Zoë"}}
    raw = json.dumps(body, ensure_ascii=False).encode(encoding)
    response = send(pk, "post", "/v1/track", raw, content_type)
    assert response.status_code == 200, response.content
    contact = Contact.objects.get(project=project)
    assert (contact.email, contact.data) == ("zoe@example.com", {"name": "Zoë"})


def test_a_body_that_is_not_in_its_charset_is_400(pk):
    raw = '{"email": "a@b.co", "event": "é"}'.encode("latin-1")
    response = send(pk, "post", "/v1/track", raw, "application/json; charset=utf-8")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not Event.objects.exists()


def test_wide_encodings_count_against_the_byte_limit(pk, settings):
    """UTF-32 takes four bytes a character: the limit is on bytes read, so it bites earlier."""
    settings.PLUNK_EVENTS = {"TRACK_MAX_BYTES": 400}
    body = {"email": "a@b.co", "event": "x", "data": {"k": "y" * 80}}
    assert len(json.dumps(body)) < 400 < len(json.dumps(body).encode("utf-32"))
    response = send(
        pk,
        "post",
        "/v1/track",
        json.dumps(body).encode("utf-32"),
        "application/json; charset=utf-32",
    )
    assert response.status_code == 413
    response = send(pk, "post", "/v1/track", json.dumps(body).encode(), "application/json")
    assert response.status_code == 200


def test_empty_body_with_any_content_type_is_not_parsed(sk, project):
    """A DELETE without a body is fine whatever Content-Type the client sends along."""
    response = sk.generic("DELETE", "/events/nothing", b"", content_type="text/plain")
    assert response.status_code == 200, response.content


def test_zlib_compressed_body_is_415_not_decompressed(pk):
    raw = zlib.compress(json.dumps(TRACK).encode())
    response = send(pk, "post", "/v1/track", raw, "application/json; charset=zlib")
    assert response.status_code == 415
    assert not Event.objects.exists()
