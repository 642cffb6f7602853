"""Plunk's two list shapes for the sibling resources.

- Contacts: keyset pages ``{data, cursor, hasMore, total}``; ``cursor`` is the id of the last
  item, ``total`` is counted on the first page only (0 afterwards, as Plunk does to skip the
  recount). Fetches ``limit + 1`` rows to know ``hasMore``; never an OFFSET.
- Workflows: numbered pages ``{data, total, page, pageSize, totalPages}``; a page past the end
  is empty rather than a 404.
"""

from __future__ import annotations

import contextlib
import math
import uuid

from django.db.models import Q
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from ..services.errors import FieldErrorList, ValidationFailed
from ..services.validation import enum_message
from .params import lenient_int


def enum_param(params, name: str, choices, default: str, errors: FieldErrorList) -> str:
    """A query value that must be one of ``choices``; absent or empty gives ``default``."""
    value = params.get(name) or default
    if value not in choices:
        errors.add(name, enum_message(choices, value), "invalid_enum_value")
    return value


class ContactCursorPagination(BasePagination):
    """Keyset pagination ordered by ``sort`` (``createdAt``|``email``) and ``dir``, then id;
    any other ``sort`` or ``dir`` is a 422 rather than silently the default order."""

    default_limit = 20
    max_limit = 100
    sort_fields = {"createdAt": "created_at", "email": "email"}

    def paginate_queryset(self, queryset, request, view=None):
        params = request.query_params
        self.limit = lenient_int(params.get("limit"), self.default_limit, self.max_limit)
        errors = FieldErrorList()
        sort = enum_param(params, "sort", self.sort_fields, "createdAt", errors)
        direction = enum_param(params, "dir", ("asc", "desc"), "desc", errors)
        if errors:
            raise ValidationFailed(errors)
        field = self.sort_fields[sort]
        descending = direction == "desc"
        raw_cursor = params.get("cursor") or None

        self.total = queryset.count() if raw_cursor is None else 0
        sign = "-" if descending else ""
        ordered = queryset.order_by(f"{sign}{field}", f"{sign}id")
        if raw_cursor is not None:
            ordered = ordered.filter(self._after(queryset, field, raw_cursor, descending))
        rows = list(ordered[: self.limit + 1])
        self.has_more = len(rows) > self.limit
        rows = rows[: self.limit]
        self.cursor = str(rows[-1].pk) if self.has_more else None
        return rows

    @staticmethod
    def _after(queryset, field: str, raw_cursor: str, descending: bool) -> Q:
        """Rows strictly after the cursor's row in the chosen order."""
        last = None
        with contextlib.suppress(ValueError):
            last = queryset.filter(pk=uuid.UUID(raw_cursor)).values(field, "id").first()
        if last is None:
            errors = FieldErrorList()
            errors.add("cursor", "Invalid cursor: no such contact in this list", "invalid_string")
            raise ValidationFailed(errors)
        op = "lt" if descending else "gt"
        return Q(**{f"{field}__{op}": last[field]}) | Q(
            **{field: last[field], f"id__{op}": last["id"]}
        )

    def get_paginated_response(self, data):
        return Response(
            {"data": data, "cursor": self.cursor, "hasMore": self.has_more, "total": self.total}
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["data", "cursor", "hasMore", "total"],
            "properties": {
                "data": schema,
                "cursor": {"type": "string", "nullable": True},
                "hasMore": {"type": "boolean"},
                "total": {"type": "integer"},
            },
        }


class PagePagination(BasePagination):
    """``page`` (1-based) and ``pageSize`` (default 20, at most 100)."""

    default_page_size = 20
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        params = request.query_params
        self.page = lenient_int(params.get("page"), 1, 10**9)
        self.page_size = lenient_int(
            params.get("pageSize"), self.default_page_size, self.max_page_size
        )
        self.total = queryset.count()
        start = (self.page - 1) * self.page_size
        return list(queryset[start : start + self.page_size])

    def get_paginated_response(self, data):
        return Response(
            {
                "data": data,
                "total": self.total,
                "page": self.page,
                "pageSize": self.page_size,
                "totalPages": math.ceil(self.total / self.page_size),
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["data", "total", "page", "pageSize", "totalPages"],
            "properties": {
                "data": schema,
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "pageSize": {"type": "integer"},
                "totalPages": {"type": "integer"},
            },
        }
