"""The list filters of the API as django-filter ``FilterSet``s, run by DRF's ``DjangoFilterBackend``.

drf-spectacular documents each filter from its class and ``help_text`` (``filters=True`` on the
custom list actions). A bad value is the 422 ``VALIDATION_ERROR`` envelope with one
``{field, message, code}`` item per parameter, as everywhere else in the API, never DRF's 400.

Pagination parameters (``limit``, ``cursor``, ``page``, ``pageSize``, and the contacts' keyset
``sort``/``dir``) stay with the pagination (:mod:`.pagination`, :mod:`.params`): they shape the
page, not the rows. Events are listed by the service, which runs its keyset query on its own
indexes: their FilterSets validate the filter values and hand them over
(:meth:`PlunkFilterSet.lookups`).
"""

from __future__ import annotations

from typing import Any, Self

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django_filters.constants import EMPTY_VALUES
from django_filters.rest_framework import DjangoFilterBackend, FilterSet

from ..models import Contact, Event, Workflow
from ..services.errors import FieldErrorList, ValidationFailed
from ..services.validation import enum_message

# ---------------------------------------------------------------------------------------------
# Fields and filters


class TrueFalseField(forms.Field):
    """``true`` or ``false``, nothing else (not ``1``, not ``True``); empty means no filter."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if value in ("true", "false"):
            return value == "true"
        raise ValidationError(
            "Expected true or false", code="invalid_type", params={"received": "string"}
        )


class TrueFalseFilter(django_filters.BooleanFilter):
    field_class = TrueFalseField


class EnumField(forms.CharField):
    """One of ``choices``; absent or empty gives ``default`` (``None``: no value)."""

    def __init__(self, *, choices, default: str | None = None, **kwargs):
        self.allowed = [choice for choice, _ in choices]
        self.default = default
        super().__init__(strip=False, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return self.default
        if value not in self.allowed:
            raise ValidationError(enum_message(self.allowed, value), code="invalid_enum_value")
        return value


class EnumFilter(django_filters.CharFilter):
    """A strict enum: documented with its ``choices``; any other value is a 422."""

    field_class = EnumField


class OrderFilter(EnumFilter):
    """Half of an order (``sort`` or ``dir``): the FilterSet orders with both, so alone it
    leaves the rows as they are."""

    def filter(self, qs, value):
        return qs


# ---------------------------------------------------------------------------------------------
# Validation in the API's envelope


def field_errors(form: forms.Form) -> FieldErrorList:
    """The form's errors as ``errors[]`` items, in the order of the FilterSet's filters."""
    errors = FieldErrorList()
    for field, problems in form.errors.as_data().items():
        for problem in problems:
            message = next(iter(problem))  # with its ``params`` filled in
            received = (problem.params or {}).get("received")
            errors.add(field, message, problem.code or "invalid_string", received)
    return errors


class PlunkFilterSet(FilterSet):
    def validated(self) -> Self:
        """This FilterSet, or the 422 ``VALIDATION_ERROR`` naming each bad parameter."""
        if not self.is_valid():
            raise ValidationFailed(field_errors(self.form))
        return self

    def lookups(self) -> dict[str, Any]:
        """The cleaned, non-empty filter values by model field (``{"name": "signup"}``), for a
        service that runs the query itself."""
        cleaned = self.form.cleaned_data
        return {
            f.field_name: cleaned[name]
            for name, f in self.filters.items()
            if cleaned.get(name) not in EMPTY_VALUES
        }


class PlunkFilterBackend(DjangoFilterBackend):
    """``DjangoFilterBackend`` whose bad values are the API's 422, not DRF's 400."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        return filterset.validated().qs


class FilterSetViewMixin:
    """The part of ``GenericAPIView`` that ``DjangoFilterBackend`` and drf-spectacular use, for
    the ``ViewSet``s whose lists are custom actions: ``filterset_class`` filters the project's
    rows through ``filter_queryset(get_queryset())``."""

    filter_backends = [PlunkFilterBackend]
    filterset_class: type[PlunkFilterSet]

    def get_queryset(self):
        model = self.filterset_class._meta.model
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular: the model, no request
            return model.objects.none()
        return model.objects.filter(project=self.project)

    def filter_queryset(self, queryset):
        for backend in self.filter_backends:
            queryset = backend().filter_queryset(self.request, queryset, self)
        return queryset

    def filterset(self, request, queryset=None) -> PlunkFilterSet:
        """The validated FilterSet of the request's query (a 422 if a value is bad)."""
        backend = PlunkFilterBackend()
        queryset = self.get_queryset() if queryset is None else queryset
        return backend.get_filterset(request, queryset, self).validated()


# ---------------------------------------------------------------------------------------------
# FilterSets


class EventFilterSet(PlunkFilterSet):
    """``GET /events``."""

    eventName = django_filters.CharFilter(
        field_name="name", strip=False, help_text="Only events with this exact name."
    )

    class Meta:
        model = Event
        fields: list[str] = []


class ContactEventFilterSet(PlunkFilterSet):
    """``GET /events/contact/<contactId>``: the contact of the path. An id that is not a UUID
    is not valid here, and the view lists nothing (Plunk never checks the contact)."""

    contactId = django_filters.UUIDFilter(field_name="contact_id", required=True, strip=False)

    class Meta:
        model = Event
        fields: list[str] = []


class ContactFilterSet(PlunkFilterSet):
    """``GET /contacts`` (``sort`` and ``dir`` are the keyset pagination's)."""

    search = django_filters.CharFilter(
        field_name="email",
        lookup_expr="icontains",
        help_text="Case-insensitive substring of email.",
    )
    subscribed = TrueFalseFilter(help_text="Only (un)subscribed contacts.")

    class Meta:
        model = Contact
        fields: list[str] = []


STRICT = "Empty means the default; any other value is a 422."


class SortedFilterSet(PlunkFilterSet):
    """Plunk's ``sort`` (a key of :attr:`sort_fields`; subclasses declare the filter with their
    choices) and ``dir``; ties are broken by id in the same direction, so pages are stable."""

    sort_fields: dict[str, str] = {}

    dir = OrderFilter(
        choices=[("asc", "ascending"), ("desc", "descending")],
        default="desc",
        help_text=f"Default `desc`. {STRICT}",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Last, as Plunk's schemas declare it: errors are reported in the filters' order.
        self.filters["dir"] = self.filters.pop("dir")

    def sortable(self, queryset, sort: str):
        """The queryset ready to be ordered by ``sort`` (e.g. with a count annotated)."""
        return queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        sort, direction = self.form.cleaned_data["sort"], self.form.cleaned_data["dir"]
        sign = "-" if direction == "desc" else ""
        ordering = (f"{sign}{self.sort_fields[sort]}", f"{sign}id")
        return self.sortable(queryset, sort).order_by(*ordering)


class WorkflowFilterSet(SortedFilterSet):
    """``GET /workflows``: Plunk's ``search``, ``status``, ``sort`` and ``dir``."""

    sort_fields = {
        "createdAt": "created_at",
        "updatedAt": "updated_at",
        "name": "name",
        "steps": "step_count",
    }

    search = django_filters.CharFilter(
        method="search_name_or_description",
        help_text="Case-insensitive substring of the name or the description.",
    )
    status = EnumFilter(
        method="only_status",
        choices=[("active", "enabled workflows"), ("disabled", "disabled workflows")],
        help_text="Only enabled (`active`) or disabled workflows; empty means both, any other "
        "value is a 422.",
    )
    sort = OrderFilter(
        choices=[
            ("createdAt", "creation time"),
            ("updatedAt", "last change"),
            ("name", "name"),
            ("steps", "number of steps"),
        ],
        default="createdAt",
        help_text=f"Default `createdAt`. {STRICT}",
    )

    class Meta:
        model = Workflow
        fields: list[str] = []

    def search_name_or_description(self, queryset, name, value: str):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    def only_status(self, queryset, name, value: str):
        return queryset.filter(enabled=value == "active")

    def sortable(self, queryset, sort: str):
        return queryset.annotate(step_count=Count("steps")) if sort == "steps" else queryset
