"""Domain errors raised by the services; the API renders them in Plunk's error envelope."""

from __future__ import annotations

import uuid
from typing import Any


class PlunkError(Exception):
    """An expected refusal with an HTTP status, a Plunk error code and optional details."""

    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class FieldErrorList(list):
    """``errors[]`` items: ``{field, message, code[, received]}``."""

    def add(self, field: str, message: str, code: str, received: Any = None) -> None:
        item: dict[str, Any] = {"field": field, "message": message, "code": code}
        if received is not None:
            item["received"] = received
        self.append(item)


class ValidationFailed(PlunkError):
    """422 VALIDATION_ERROR with field-level ``errors``."""

    status_code = 422
    code = "VALIDATION_ERROR"

    def __init__(
        self,
        errors: list[dict[str, Any]],
        message: str = "Request validation failed",
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.errors = list(errors)


class NotFound(PlunkError):
    status_code = 404
    code = "RESOURCE_NOT_FOUND"

    def __init__(self, resource: str, id: Any) -> None:  # noqa: A002
        super().__init__(
            f'{resource} with ID "{id}" was not found',
            details={"resource": resource, "id": str(id)},
        )


class Conflict(PlunkError):
    status_code = 409
    code = "CONFLICT"


class IdempotencyKeyReused(PlunkError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_REUSED"


def uuid_or_404(resource: str, value: Any) -> uuid.UUID:
    """Ids that are not UUIDs cannot exist: answer 404 rather than a database error."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(resource, value) from None
