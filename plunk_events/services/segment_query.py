"""Segment evaluation: a condition tree compiled to one query over the project's contacts.

:func:`contacts_matching` turns a (valid) condition into a ``Q`` of ``EXISTS`` subqueries and
JSON tests and returns the matching contacts as a queryset, so counting, paging or listing ids
is one SQL statement on SQLite and PostgreSQL, with no loop over contacts in Python.

Every leaf is two-valued (true or false, never SQL NULL), so ``notEquals``, ``notContains``,
``notExists`` and ``notMemberOfSegment`` are exact negations, and a missing key or a missing
``data`` never makes a row vanish from both a test and its negation. The semantics, per field:

* ``email``: case-insensitive; the value (``String(value)`` as in JavaScript) is lowercased and
  compared with the lowercased email.
* ``subscribed``: ``equals`` is ``subscribed == (value is true)``; ``notEquals`` its opposite.
* ``createdAt``/``updatedAt``: a date-like value (``YYYY-MM-DD``, alone or with a time) means its
  whole UTC day for ``equals``/``notEquals``; other values are exact instants
  (:func:`.conditions.parse_date`); ``within``/``olderThan`` compare with ``now − N units``.
* ``data.<a.b>``: object keys only (a numeric key is not an array index). Type-strict: a value
  matches only a stored value of its own JSON type, so ``1``, ``1.0``, ``"1"`` and ``true`` are
  told apart (SQLite's ``json_extract`` gives ``1`` for ``true``; the JSON type is tested with
  ``json_type`` / ``jsonb_typeof``). Numbers compare numerically, strings by code point (SQLite's
  BINARY collation, PostgreSQL's ``COLLATE "C"``), booleans ``false < true``. ``equals`` with a
  date-like string matches the strings starting with that day (``YYYY-MM-DD``). ``contains`` is case-sensitive
  and for strings only. ``exists``: the key is present and not ``null``. ``within``/``olderThan``
  compare stored strings with ``toISOString()`` of ``now − N units``.
* ``event.<name>`` and ``email.<activity>`` (over the contact's ``email.<activity>`` events):
  ``EXISTS`` on the ``(project, contact, created_at)`` index; the count extension is an
  ``EXISTS`` of the N-th event (``OFFSET N−1``), which stops reading at N.
* ``segment.<id>``: a segment of another project, or none, has no members;
  :func:`stored_membership` says which targets read stored membership, the others are inlined.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Lower, StrIndex
from django.db.models.lookups import Exact, GreaterThan
from django.utils import timezone

from ..models import Contact, Event, Project, Segment
from . import conditions
from .errors import ValidationFailed
from .membership import stored_members_q, stores_membership
from .workflow_values import js_string

#: ``email.<activity>`` → the system event recorded for it.
EMAIL_ACTIVITY_EVENTS = {
    "open": "email.open",
    "opened": "email.open",
    "click": "email.click",
    "clicked": "email.click",
    "bounce": "email.bounce",
    "bounced": "email.bounce",
    "complaint": "email.complaint",
    "complained": "email.complaint",
    "sent": "email.sent",
    "delivery": "email.delivery",
    "delivered": "email.delivery",
}

#: Matches no contact / every contact.
NOBODY = Q(pk__in=[])
EVERYBODY = Q(pk__isnull=False)

#: Given a referenced segment: a ``Q`` over contacts reading its stored membership, or None to
#: evaluate its condition inline.
MembershipLookup = Callable[[Segment], "Q | None"]


def stored_membership(segment: Segment) -> Q | None:
    """The default :data:`MembershipLookup`, the hook of the membership table.

    A STATIC or tracked DYNAMIC target reads its active membership rows
    (:mod:`.membership`); an untracked DYNAMIC one returns None: its condition is inlined.
    """
    if stores_membership(segment):
        return stored_members_q(segment)
    return None


def contacts_matching(
    project: Project,
    condition: dict,
    *,
    now: datetime | None = None,
    contact_ids: Iterable[Any] | None = None,
    membership: MembershipLookup = stored_membership,
    using: str | None = None,
) -> QuerySet[Contact]:
    """The project's contacts matching ``condition``, as one query.

    ``now`` is the instant windows count back from (default: now); ``contact_ids`` restricts
    the answer to those contacts (incremental re-evaluation); ``membership`` decides how
    ``segment.<id>`` targets are read (:func:`stored_membership`). Raises
    :class:`ValidationFailed` for an invalid condition or a cycle of segment references.
    """
    [matches] = ConditionCompiler(project, now=now, membership=membership, using=using).compile(
        [condition]
    )
    contacts = Contact.objects.using(using).filter(project=project)
    if contact_ids is not None:
        contacts = contacts.filter(pk__in=list(contact_ids))
    return contacts.filter(matches)


class ConditionCompiler:
    """Compiles several conditions of one project at one ``now``, sharing the lookups they
    need (the project's segments), into ``Q`` objects over the contact being filtered or
    annotated: ``Contact.objects.filter(q)``, or ``.annotate(m=ExpressionWrapper(q, …))`` to
    evaluate many segments for the same contacts in one statement (re-evaluation)."""

    def __init__(
        self,
        project: Project,
        *,
        now: datetime | None = None,
        membership: MembershipLookup = stored_membership,
        using: str | None = None,
    ) -> None:
        self._compiler = _Compiler(project, now or timezone.now(), membership, using)

    def compile(self, conditions_: list[dict]) -> list[Q]:
        """A ``Q`` per condition; :class:`ValidationFailed` for the first invalid one."""
        compiled = []
        for condition in conditions_:
            errors = conditions.validate_condition(condition)
            if errors:
                raise ValidationFailed(errors)
            compiled.append(self._compiler.condition(condition, "condition", frozenset()))
        return compiled


def _all(parts: list[Q]) -> Q:
    return parts[0] if len(parts) == 1 else Q(*parts)


def _any(parts: list[Q]) -> Q:
    return parts[0] if len(parts) == 1 else Q(*parts, _connector=Q.OR)


class _Compiler:
    def __init__(
        self, project: Project, now: datetime, membership: MembershipLookup, using: str | None
    ) -> None:
        self.project = project
        self.now = now
        self.membership = membership
        self.using = using
        self._segments: dict[str, Segment] | None = None

    # Tree -------------------------------------------------------------------------------------

    def condition(
        self, condition: dict, path: str, inlined: frozenset, origin: str | None = None
    ) -> Q:
        """``origin``: inside an inlined segment, the path of the filter that referenced it."""
        groups = []
        for index, group in enumerate(condition["groups"]):
            group_path = f"{path}.groups.{index}"
            parts = [
                self.filter(flt, origin or f"{group_path}.filters.{position}", inlined)
                for position, flt in enumerate(group["filters"])
            ]
            if group.get("conditions") is not None:
                nested = group["conditions"]
                parts.append(self.condition(nested, f"{group_path}.conditions", inlined, origin))
            groups.append(_all(parts))
        return _all(groups) if condition["logic"] == "AND" else _any(groups)

    def filter(self, flt: dict, path: str, inlined: frozenset) -> Q:
        field, operator, value = flt["field"], flt["operator"], flt.get("value")
        if field == "email":
            return self.email(operator, value)
        if field == "subscribed":
            return Q(subscribed=(value is True) == (operator == "equals"))
        if field in conditions.DATE_FIELDS:
            column = "created_at" if field == "createdAt" else "updated_at"
            return self.date(column, operator, value, flt.get("unit"))
        namespace, _, rest = field.partition(".")
        if namespace == "data":
            return self.data(rest.split("."), operator, value, flt.get("unit"))
        if namespace == "event":
            return self.event(rest, operator, flt)
        if namespace == "email":
            return self.event(EMAIL_ACTIVITY_EVENTS[rest], operator, flt)
        members = self.segment(rest, path, inlined)
        return members if operator == "memberOfSegment" else ~members

    # Contact columns --------------------------------------------------------------------------

    def email(self, operator: str, value: Any) -> Q:
        needle = js_string(value).lower()
        if operator in ("equals", "notEquals"):
            test = Q(Exact(Lower("email"), needle))
        else:
            test = Q(GreaterThan(StrIndex(Lower("email"), Value(needle)), 0))
        return test if operator in ("equals", "contains") else ~test

    def date(self, column: str, operator: str, value: Any, unit: str | None) -> Q:
        if operator in ("within", "olderThan"):
            since = conditions.window_start(self.now, value, unit)
            return Q(**{f"{column}__{'gte' if operator == 'within' else 'lt'}": since})
        if operator in ("equals", "notEquals"):
            day = conditions.date_like_day(value)
            if day is not None:
                start = conditions.day_start(day)
                test = Q(**{f"{column}__gte": start, f"{column}__lt": start + timedelta(days=1)})
            else:
                test = Q(**{column: conditions.parse_date(value)})
            return test if operator == "equals" else ~test
        lookup = ORDERINGS[operator]
        return Q(**{f"{column}__{lookup}": conditions.parse_date(value)})

    # data.<path> ------------------------------------------------------------------------------

    def data(self, path: list[str], operator: str, value: Any, unit: str | None) -> Q:
        if operator in ("exists", "notExists"):
            test = Q(DataTest(path, "exists"))
            return test if operator == "exists" else ~test
        if operator in ("within", "olderThan"):
            since = conditions.iso_ms(conditions.window_start(self.now, value, unit))
            return Q(DataTest(path, "gte" if operator == "within" else "lt", since))
        if operator in ("contains", "notContains"):
            test = Q(DataTest(path, "contains", value))
            return test if operator == "contains" else ~test
        if operator in ("equals", "notEquals"):
            day = conditions.date_like_day(value)
            if day is not None:  # the strings starting with that day
                test = Q(DataTest(path, "startswith", day.isoformat()))
            else:
                test = Q(DataTest(path, "eq", value))
            return test if operator == "equals" else ~test
        return Q(DataTest(path, ORDERINGS[operator], value))

    # Events -----------------------------------------------------------------------------------

    def event(self, name: str, operator: str, flt: dict) -> Q:
        events = Event.objects.using(self.using).filter(
            project=self.project, contact=OuterRef("pk"), name=name
        )
        if operator in conditions.COUNT_OPERATORS:
            window = flt.get("window")
            if window:
                since = conditions.window_start(self.now, window["amount"], window["unit"])
                events = events.filter(created_at__gte=since)
            if operator == "triggeredAtLeast":
                return self.at_least(events, int(flt["value"]))
            return ~self.at_least(events, int(flt["value"]) + 1)
        if operator == "triggered":
            return Q(Exists(events))
        if operator == "notTriggered":
            return ~Q(Exists(events))
        since = conditions.window_start(self.now, flt["value"], flt["unit"])
        recent = Q(Exists(events.filter(created_at__gte=since)))
        if operator == "triggeredWithin":
            return recent
        if operator == "notTriggeredWithin":
            return ~recent
        return Q(Exists(events)) & ~recent  # triggeredOlderThan

    @staticmethod
    def at_least(events: QuerySet[Event], count: int) -> Q:
        """At least ``count`` of ``events``: the ``count``-th exists (reads at most ``count``)."""
        if count <= 0:
            return EVERYBODY
        return Q(Exists(events.order_by()[count - 1 : count]))

    # segment.<id> -----------------------------------------------------------------------------

    def segment(self, segment_id: str, path: str, inlined: frozenset) -> Q:
        target = self.project_segments().get(segment_key(segment_id))
        if target is None:
            return NOBODY
        members = self.membership(target)
        if members is not None:
            return members
        if target.condition is None:
            return NOBODY
        if target.pk in inlined:
            raise ValidationFailed([cycle_error(path)])
        return self.condition(target.condition, path, inlined | {target.pk}, origin=path)

    def project_segments(self) -> dict[str, Segment]:
        if self._segments is None:
            segments = Segment.objects.using(self.using).filter(project=self.project)
            self._segments = {str(s.pk): s for s in segments}
        return self._segments


ORDERINGS = {
    "greaterThan": "gt",
    "lessThan": "lt",
    "greaterThanOrEqual": "gte",
    "lessThanOrEqual": "lte",
}


def segment_key(segment_id: str) -> str | None:
    """The canonical id of a ``segment.<id>`` reference; None if it is not a UUID."""
    try:
        return str(uuid.UUID(segment_id))
    except ValueError:
        return None


def referenced_segments(condition: Any) -> set[str]:
    """The canonical ids of the segments a condition names (unknown ids left out)."""
    return {
        key
        for _, flt in conditions.iter_filters(condition)
        if isinstance(flt.get("field"), str)
        and flt["field"].startswith("segment.")
        and (key := segment_key(flt["field"][len("segment.") :])) is not None
    }


def reference_errors(
    project: Project, condition: Any, *, segment_id: Any = None, using: str | None = None
) -> list[dict[str, str]]:
    """The ``segment.<id>`` filters of ``condition`` that cannot be saved, as errors on their
    ``field``: an id that is not a segment of ``project``, the segment itself (``segment_id``,
    when updating), or a reference that leads back to it, or into any cycle, through the
    conditions of other segments. One query (the project's segments).
    """
    refs = [
        (path, flt["field"][len("segment.") :])
        for path, flt in conditions.iter_filters(condition)
        if isinstance(flt.get("field"), str) and flt["field"].startswith("segment.")
    ]
    if not refs:
        return []
    segments = Segment.objects.using(using).filter(project=project).only("id", "condition")
    graph = {str(s.pk): referenced_segments(s.condition) for s in segments}
    me = None if segment_id is None else str(segment_id)
    errors = []
    for path, ref in refs:
        key = segment_key(ref)
        if key is None or key not in graph:
            message = f"Referenced segment not found: {ref}"
        elif key == me:
            message = "A segment cannot reference itself"
        elif _cycles(graph, key, me):
            message = "Circular segment reference detected"
        else:
            continue
        errors.append({"field": f"{path}.field", "message": message, "code": "custom"})
    return errors


def _cycles(graph: dict[str, set[str]], start: str, me: str | None) -> bool:
    """Whether following references from ``start`` comes back to ``me`` or loops."""
    safe: set[str] = set()

    def visit(key: str, trail: frozenset) -> bool:
        if key == me or key in trail:
            return True
        if key in safe:
            return False
        if any(visit(nxt, trail | {key}) for nxt in graph.get(key, ())):
            return True
        safe.add(key)
        return False

    return visit(start, frozenset())


def cycle_error(path: str) -> dict[str, str]:
    return {
        "field": f"{path}.field",
        "message": "Circular segment reference detected",
        "code": "custom",
    }


# ---------------------------------------------------------------------------------------------
# The JSON test of data.<path>

SQL_OPERATORS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def json_kind(value: Any) -> str:
    """The JSON type of a filter value: ``string``, ``number`` or ``boolean``."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"


class DataTest(Func):
    """A test of the value at a key path of ``Contact.data``; true or false, never NULL.

    ``test`` is ``exists`` (present and not ``null``), ``contains`` (a substring of a string),
    ``startswith`` (a string's first characters), or ``eq``/``gt``/``gte``/``lt``/``lte`` against ``value``, which only a stored value of the
    same JSON type can satisfy.
    """

    output_field = BooleanField()

    def __init__(self, path: list[str], test: str, value: Any = None) -> None:
        super().__init__(F("data"))
        self.path, self.test, self.value = list(path), test, value

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover (vendor methods below)
        raise NotImplementedError(f"DataTest has no SQL for {connection.vendor}")

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        # SQLite matches a quoted label with the key as stored, escapes included, and the
        # JSONField stores json.dumps() text: the label is json.dumps(key). A key containing
        # '"' cannot be written as a label and is never found.
        path = "$" + "".join(f".{json.dumps(key)}" for key in self.path)
        kind = f"json_type({column}, %s)"
        kind_params = [*params, path]
        extracted, extracted_params = f"json_extract({column}, %s)", [*params, path]
        if self.test == "exists":
            return f"COALESCE({kind} <> 'null', 0)", kind_params
        if self.test == "contains":
            sql = f"{kind} = 'text' AND instr({extracted}, %s) > 0"
            return f"COALESCE({sql}, 0)", [*kind_params, *extracted_params, self.value]
        if self.test == "startswith":
            sql = f"{kind} = 'text' AND substr({extracted}, 1, %s) = %s"
            prefix = [len(self.value), self.value]
            return f"COALESCE({sql}, 0)", [*kind_params, *extracted_params, *prefix]
        types = {
            "string": "('text')",
            "number": "('integer', 'real')",
            "boolean": "('true', 'false')",
        }
        sql = f"{kind} IN {types[json_kind(self.value)]} AND {extracted} {SQL_OPERATORS[self.test]} %s"
        return f"COALESCE({sql}, 0)", [*kind_params, *extracted_params, self.value]

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        keys = "".join(" -> %s" for _ in self.path[:-1])
        jsonb = f"({column}{keys} -> %s)"
        text = f"({column}{keys} ->> %s)"
        path_params = [*params, *self.path]
        kind = f"jsonb_typeof{jsonb}"
        if self.test == "exists":
            return f"COALESCE({kind} <> 'null', FALSE)", path_params
        if self.test == "contains":
            sql = f"{kind} = 'string' AND strpos({text}, %s) > 0"
            return f"COALESCE({sql}, FALSE)", [*path_params, *path_params, self.value]
        if self.test == "startswith":
            sql = f"{kind} = 'string' AND left({text}, %s) = %s"
            prefix = [len(self.value), self.value]
            return f"COALESCE({sql}, FALSE)", [*path_params, *path_params, *prefix]
        operator = SQL_OPERATORS[self.test]
        value_kind = json_kind(self.value)
        if value_kind == "string":
            compared = f'{text} COLLATE "C" {operator} %s'
            value = self.value
        else:  # jsonb compares numbers numerically and booleans false < true
            compared = f"{jsonb} {operator} %s::jsonb"
            value = json.dumps(self.value)
        sql = f"{kind} = '{value_kind}' AND {compared}"
        return f"COALESCE({sql}, FALSE)", [*path_params, *path_params, value]
