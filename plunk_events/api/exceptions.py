"""Plunk's error envelope for every error of the app's views.

Attached per view through ``PlunkAPIMixin.get_exception_handler`` so a host site's own DRF APIs
keep their format.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..services.errors import PlunkError, ValidationFailed
from .authentication import ApiKeyError
from .formatting import jsonable, timestamp_now

logger = logging.getLogger("plunk_events")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_OK = re.compile(r"^[\x21-\x7e]{1,128}$")

VALIDATION_SUGGESTION = "Please check the API documentation for the correct request format."
TYPE_SUGGESTION = (
    "One or more fields have incorrect types. Check that strings are quoted, numbers are "
    "unquoted, and booleans are true/false."
)
REQUIRED_SUGGESTION = (
    "Required fields are missing. Ensure all required fields are included in your request."
)
FIELD_ERRORS_SUGGESTION = 'Check the "errors" array for specific field-level validation issues.'
JSON_SUGGESTION = (
    "Ensure the request body is valid JSON and the Content-Type header is set to application/json."
)

#: Error code for a status when the exception carries none (our choice; Plunk has no code there).
STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "RESOURCE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "BAD_REQUEST",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
}

#: DRF serializer error codes mapped to zod's issue codes.
DRF_CODES = {
    "required": "invalid_type",
    "null": "invalid_type",
    "invalid": "invalid_type",
    "not_a_list": "invalid_type",
    "not_a_dict": "invalid_type",
    "blank": "too_small",
    "min_length": "too_small",
    "empty": "too_small",
    "max_length": "too_big",
    "max_value": "too_big",
    "min_value": "too_small",
    "invalid_choice": "invalid_enum_value",
}


def request_id_for(request) -> str:
    """Reuse a sane incoming X-Request-ID, else make one; cached on the request."""
    rid = getattr(request, "plunk_request_id", None)
    if rid is None:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        rid = incoming if _REQUEST_ID_OK.match(incoming) else str(uuid.uuid4())
        request.plunk_request_id = rid
    return rid


def error_response(
    request,
    status: int,
    code: str,
    message: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    details: dict[str, Any] | None = None,
    suggestion: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "statusCode": status,
        "requestId": request_id_for(request),
    }
    if errors is not None:
        error["errors"] = errors
    if details is not None:
        error["details"] = jsonable(details)
    if suggestion is not None:
        error["suggestion"] = suggestion
    # ``message`` at the top level is our addition: Plunk's Node SDK throws ``body.message``.
    response = Response(
        {"success": False, "message": message, "error": error, "timestamp": timestamp_now()},
        status=status,
        headers=headers,
    )
    response[REQUEST_ID_HEADER] = error["requestId"]
    return response


def flatten_drf_errors(detail: Any, prefix: str = "") -> list[dict[str, Any]]:
    """DRF's nested ``ValidationError.detail`` as ``[{field, message, code}]`` with dot paths."""
    items: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" else f"{prefix}{key}"
            items += flatten_drf_errors(value, f"{name}." if name else "")
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                items += flatten_drf_errors(value, f"{prefix}{index}.")
            else:
                items += flatten_drf_errors(value, prefix)
    else:
        drf_code = getattr(detail, "code", "invalid")
        items.append(
            {
                "field": prefix.rstrip("."),
                "message": "Required" if drf_code == "required" else str(detail),
                "code": DRF_CODES.get(drf_code, drf_code),
            }
        )
    return items


def validation_suggestion(errors: list[dict[str, Any]]) -> str:
    if any(e.get("code") == "invalid_type" for e in errors):
        return TYPE_SUGGESTION
    if any("required" in e.get("message", "").lower() for e in errors):
        return REQUIRED_SUGGESTION
    return VALIDATION_SUGGESTION


def plunk_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context["request"]
    set_rollback()
    if isinstance(exc, ValidationFailed):
        suggestion = FIELD_ERRORS_SUGGESTION if exc.details else validation_suggestion(exc.errors)
        return error_response(
            request, 422, exc.code, exc.message,
            errors=exc.errors, details=exc.details, suggestion=suggestion,
        )  # fmt: skip
    if isinstance(exc, PlunkError):
        return error_response(request, exc.status_code, exc.code, exc.message, details=exc.details)
    if isinstance(exc, ApiKeyError):
        return error_response(
            request, 401, exc.plunk_code, str(exc.detail), suggestion=exc.suggestion,
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )  # fmt: skip
    if isinstance(exc, exceptions.ParseError):
        return error_response(
            request, 400, "VALIDATION_ERROR", "Invalid JSON in request body",
            suggestion=JSON_SUGGESTION,
        )  # fmt: skip
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_drf_errors(exc.detail)
        return error_response(
            request, 422, "VALIDATION_ERROR", "Request validation failed",
            errors=errors, suggestion=validation_suggestion(errors),
        )  # fmt: skip
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response(request, 404, "RESOURCE_NOT_FOUND", "Resource not found")
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or unreachable: nothing was committed, so the client may retry.
        logger.warning("Database unavailable in %s %s: %s", request.method, request.path, exc)
        return error_response(
            request, 503, "DATABASE_ERROR", "The database is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    if isinstance(exc, RequestDataTooBig):
        return error_response(request, 413, "BAD_REQUEST", "Request body is too large")
    if isinstance(exc, exceptions.APIException):
        headers = {}
        details = None
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            wait = max(1, math.ceil(exc.wait))  # the same rounding as RateLimit-Reset
            headers["Retry-After"] = str(wait)
            details = {"retryAfter": wait}
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(
            request, status, STATUS_CODES.get(status, "BAD_REQUEST"), message,
            details=details, headers=headers or None,
        )  # fmt: skip
    logger.exception("Unhandled error in %s %s", request.method, request.path)
    return error_response(request, 500, "INTERNAL_SERVER_ERROR", "An unexpected error occurred")
