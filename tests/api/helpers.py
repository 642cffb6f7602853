"""Helpers for the HTTP tests: whole-envelope assertions, row counts and a track call."""

from __future__ import annotations

import re

from plunk_events.models import Contact, Event

#: JavaScript ``toISOString()``: UTC, milliseconds, ``Z``.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

MISSING_AUTH_SUGGESTION = (
    'Include an Authorization header with format: "Authorization: Bearer YOUR_API_KEY"'
)
INVALID_KEY_SUGGESTION = (
    'Verify your API key is correct and starts with "sk_" for secret keys or "pk_" for public keys.'
)
TYPE_SUGGESTION = (
    "One or more fields have incorrect types. Check that strings are quoted, numbers are "
    "unquoted, and booleans are true/false."
)
VALIDATION_SUGGESTION = "Please check the API documentation for the correct request format."
FIELD_ERRORS_SUGGESTION = 'Check the "errors" array for specific field-level validation issues.'
SECRET_KEY_REQUIRED = (
    "Invalid secret API key. This endpoint requires a secret key (sk_*), not a public key."
)


def assert_error(response, status: int, code: str, message: str, **extra) -> dict:
    """Assert the whole error envelope (README, "Errors").

    ``extra`` holds the ``errors``, ``details`` and ``suggestion`` the error carries.
    """
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    error = {
        "code": code,
        "message": message,
        "statusCode": status,
        "requestId": response["X-Request-ID"],
        **extra,
    }
    # ``message`` is repeated at the top level for Plunk's Node SDK (it throws ``body.message``).
    assert body == {
        "success": False,
        "message": message,
        "error": error,
        "timestamp": body.get("timestamp"),
    }
    assert TIMESTAMP.match(body["timestamp"])
    return body


def assert_validation(response, errors: list[dict], suggestion: str | None = None) -> dict:
    """422 ``Request validation failed`` with exactly ``errors``."""
    if suggestion is None:
        suggestion = (
            TYPE_SUGGESTION
            if any(e["code"] == "invalid_type" for e in errors)
            else VALIDATION_SUGGESTION
        )
    return assert_error(
        response,
        422,
        "VALIDATION_ERROR",
        "Request validation failed",
        errors=errors,
        suggestion=suggestion,
    )


def field_error(field: str, code: str, message: str, received: str | None = None) -> dict:
    """One item of a 422's ``errors``; ``received`` (the JSON type sent) where the API names it."""
    error = {"field": field, "message": message, "code": code}
    if received is not None:
        error["received"] = received
    return error


def assert_field_errors(response, errors: list[tuple]) -> dict:
    """422 ``Request validation failed`` with exactly ``errors``, given as
    ``(field, code, message[, received])`` tuples."""
    return assert_validation(response, [field_error(*error) for error in errors])


def assert_not_found(response, resource: str, id: str) -> dict:
    """404 ``RESOURCE_NOT_FOUND`` of ``resource`` (Contact, Segment, Workflow) ``id``."""
    return assert_error(
        response,
        404,
        "RESOURCE_NOT_FOUND",
        f'{resource} with ID "{id}" was not found',
        details={"resource": resource, "id": id},
    )


def assert_secret_key_required(response) -> dict:
    """401 ``INVALID_API_KEY`` of a public key on a secret-key route."""
    return assert_error(
        response, 401, "INVALID_API_KEY", SECRET_KEY_REQUIRED, suggestion=INVALID_KEY_SUGGESTION
    )


def counts(project=None) -> tuple[int, int]:
    """(contacts, events), of one project or of all."""
    contacts, events = Contact.objects.all(), Event.objects.all()
    if project is not None:
        contacts, events = contacts.filter(project=project), events.filter(project=project)
    return contacts.count(), events.count()


def track(client, body, **headers):
    """POST /v1/track with a JSON body."""
    return client.post("/v1/track", body, format="json", **headers)
