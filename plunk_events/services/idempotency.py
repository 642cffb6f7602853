"""Idempotency-Key claims of the write routes (``POST /v1/track``, ``POST /v1/track/batch``).

A claim is a row inserted in the transaction of the request's writes, so it commits with them or
not at all: a 4xx or a 5xx leaves the key free. A repeat of a committed key is Plunk's 409
``IDEMPOTENCY_KEY_REUSED``. With ``IDEMPOTENCY_REPLAY`` the claim also keeps the request's
fingerprint (method, path, SHA-256 of the raw body) and the exact bytes of its 2xx response,
written in the same transaction as the events, and a repeat of the same request gets those
bytes again (:class:`Replayed`) while a different request with the key still gets the 409.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from ..conf import conf
from ..models import IdempotencyKey, Project
from .db import prep_values
from .errors import IdempotencyKeyReused

#: Responses over this many bytes are not stored: a repeat gets the 409 as without replay.
REPLAY_MAX_BYTES = 64 * 1024

_REPLAY_FIELDS = ("request_sha256", "response_body", "response_content_type")


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str
    body: bytes


class Replayed(Exception):  # noqa: N818 (not an error: the answer to a repeat)
    """A repeat of a completed request: answer with ``response`` again and write nothing."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("Idempotent replay")
        self.response = response


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass
class Replayable:
    """A request that can be replayed: its body's hash, and how to render its response from
    the service's result. The service renders it inside the transaction of its writes
    (:func:`complete`), so the claim stores exactly the bytes the client is sent
    (:attr:`response`), ids and timestamps included."""

    body_sha256: str
    render: Callable[[Any], bytes]
    content_type: str = "application/json"
    status: int = 200
    response: StoredResponse | None = None


def check(
    project: Project, key: str, method: str, path: str, request_sha256: str | None = None
) -> None:
    """Before the request runs: 409, or :class:`Replayed` when ``request_sha256`` is given
    (replay is on) and the committed request with ``key`` was this same one."""
    claims = IdempotencyKey.objects.filter(project=project, key=key, expires_at__gt=timezone.now())
    fields = ["key", "method", "path", "created_at", "status_code"]
    if request_sha256 is not None:
        fields += _REPLAY_FIELDS
    claim = claims.only(*fields).first()
    if claim is not None:
        raise _answer_to_repeat(claim, method, path, request_sha256)


def claim(
    alias: str,
    project: Project,
    key: str,
    path: str,
    now: datetime,
    replay: Replayable | None = None,
    method: str = "POST",
) -> None:
    """Insert the claim in the caller's transaction: it commits with the writes or not at all.

    A concurrent request with the same key waits on the unique index until the first commits
    (then gets the 409, or with replay the first response, stored in that same transaction) or
    rolls back (then proceeds), so a key never outlives a failed request.
    """
    connection = connections[alias]
    table = connection.ops.quote_name(IdempotencyKey._meta.db_table)
    params = prep_values(
        IdempotencyKey,
        connection,
        project=project.pk,
        key=key,
        method=method,
        path=path,
        status_code=200,
        created_at=now,
        expires_at=now + timedelta(hours=conf.IDEMPOTENCY_KEY_TTL_HOURS),
        request_sha256=replay.body_sha256 if replay is not None else "",
        response_content_type="",
    )
    # Inserts a new claim or takes over an expired one (forgetting its stored response);
    # returns no row for a live claim.
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (project_id, "key", method, path, status_code, created_at,'
            " expires_at, request_sha256, response_content_type)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ' ON CONFLICT (project_id, "key") DO UPDATE SET method = EXCLUDED.method,'
            " path = EXCLUDED.path, status_code = EXCLUDED.status_code,"
            " created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,"
            " request_sha256 = EXCLUDED.request_sha256, response_body = NULL,"
            " response_content_type = EXCLUDED.response_content_type"
            f" WHERE {table}.expires_at <= EXCLUDED.created_at"
            " RETURNING id",
            params,
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        live = IdempotencyKey.objects.using(alias).get(project=project, key=key)
        raise _answer_to_repeat(
            live, method, path, replay.body_sha256 if replay is not None else None
        )


def complete(alias: str, project: Project, key: str, replay: Replayable, result: Any) -> None:
    """Render the response from ``result`` and store it in the claim, in the caller's
    transaction (before the commit), unless it is over :data:`REPLAY_MAX_BYTES`."""
    body = replay.render(result)
    replay.response = StoredResponse(replay.status, replay.content_type, body)
    if len(body) > REPLAY_MAX_BYTES:
        return
    IdempotencyKey.objects.using(alias).filter(project=project, key=key).update(
        status_code=replay.status,
        response_body=body,
        response_content_type=replay.content_type,
    )


def _answer_to_repeat(
    claim: IdempotencyKey, method: str, path: str, request_sha256: str | None
) -> Exception:
    """Without replay, or when the claim has nothing to replay (claimed without replay, or its
    response was too big), Plunk's 409; with replay, the stored response if the request is
    the same, else the 409 saying the request differs."""
    if request_sha256 is None:
        return _key_reused(claim)
    if not claim.request_sha256:
        return _key_reused(claim, reason="not_replayable")
    if (claim.method, claim.path, claim.request_sha256) != (method, path, request_sha256):
        return _key_reused(claim, reason="different_request")
    if claim.response_body is None:
        return _key_reused(claim, reason="not_replayable")
    return Replayed(
        StoredResponse(
            claim.status_code or 200, claim.response_content_type, bytes(claim.response_body)
        )
    )


_REASONS = {
    "different_request": "with a different request (method, path or body)",
    "not_replayable": "and its response cannot be replayed",
}


def _key_reused(claim: IdempotencyKey, reason: str | None = None) -> IdempotencyKeyReused:
    message = f'Idempotency-Key "{claim.key}" has already been used'
    details = {
        "key": claim.key,
        "originalRequest": f"{claim.method} {claim.path}",
        "originalRequestAt": claim.created_at,
        "originalStatusCode": claim.status_code,
    }
    if reason is not None:
        message = f"{message} {_REASONS[reason]}"
        details["reason"] = reason
    return IdempotencyKeyReused(message, details=details)


def purge_expired_idempotency_keys(now: datetime | None = None) -> int:
    """Delete claims past their TTL (``manage.py plunk_rollup`` and the periodic tick run it)."""
    expired = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now())
    return expired.delete()[0]
