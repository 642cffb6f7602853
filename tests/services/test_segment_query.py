"""Property test of segment evaluation.

Random contacts (data with nested keys, ints, floats, strings, booleans, nulls, arrays and ISO
date strings; subscription; created/updated times), random events around a fixed ``now``,
random segments, and random conditions from the whole grammar (every namespace and operator,
the count extension, nested groups, AND/OR, references to STATIC segments without members, to
unknown ids and to untracked DYNAMIC segments, inlined, that refer to others): the contacts :func:`contacts_matching` returns are those a small
reference evaluator written here accepts, on both databases.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plunk_events.models import Contact, Event, Project, Segment
from plunk_events.services.segment_query import contacts_matching

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 6, 15, 12, 0, 0, 123000, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNIT_MS = {"days": 86_400_000, "hours": 3_600_000, "minutes": 60_000}
ACTIVITIES = {
    "open": "email.open", "opened": "email.open", "click": "email.click",
    "clicked": "email.click", "bounce": "email.bounce", "bounced": "email.bounce",
    "complaint": "email.complaint", "complained": "email.complaint", "sent": "email.sent",
    "delivery": "email.delivery", "delivered": "email.delivery",
}  # fmt: skip
EVENT_NAMES = ["purchase", "signup", "email.open", "email.click", "email.sent", "email.bounce"]
KEYS = ["plan", "age", "seen", "flag", "nested"]

# ---------------------------------------------------------------------------------------------
# The reference evaluator

MISSING = object()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cutoff(amount, unit) -> datetime:
    return NOW - timedelta(milliseconds=amount * UNIT_MS[unit])


def as_date(value) -> datetime:
    if isinstance(value, int):
        return EPOCH + timedelta(milliseconds=value)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def date_like(value) -> bool:
    return isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\d(T|$)", value) is not None


def json_type(value) -> str | None:
    if value is MISSING:
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def at_path(data, path):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


def js_string(value) -> str:
    return {True: "true", False: "false"}[value] if isinstance(value, bool) else str(value)


COMPARE = {
    "greaterThan": lambda a, b: a > b,
    "lessThan": lambda a, b: a < b,
    "greaterThanOrEqual": lambda a, b: a >= b,
    "lessThanOrEqual": lambda a, b: a <= b,
}


def data_test(stored, op, value, unit) -> bool:
    kind = json_type(stored)
    if op == "exists":
        return kind not in (None, "null")
    if op in ("within", "olderThan"):
        bound = iso(cutoff(value, unit))
        return kind == "string" and (stored >= bound if op == "within" else stored < bound)
    if op == "contains":
        return kind == "string" and value in stored
    if op == "equals":
        if date_like(value):
            return kind == "string" and stored[:10] == value[:10]
        return kind == json_type(value) and stored == value
    return kind == json_type(value) and COMPARE[op](stored, value)


def date_test(stored: datetime, op, value, unit) -> bool:
    if op == "within":
        return stored >= cutoff(value, unit)
    if op == "olderThan":
        return stored < cutoff(value, unit)
    if op == "equals":
        if date_like(value):
            return stored.date() == date.fromisoformat(value[:10])
        return stored == as_date(value)
    return COMPARE[op](stored, as_date(value))


def event_test(times: list[datetime], flt) -> bool:
    op, value = flt["operator"], flt.get("value")
    if op in ("triggeredAtLeast", "triggeredAtMost"):
        window = flt.get("window")
        n = sum(1 for t in times if not window or t >= cutoff(window["amount"], window["unit"]))
        return n >= value if op == "triggeredAtLeast" else n <= value
    recent = any(t >= cutoff(value, flt["unit"]) for t in times) if value else False
    return {
        "triggered": bool(times),
        "notTriggered": not times,
        "triggeredWithin": recent,
        "notTriggeredWithin": not recent,
        "triggeredOlderThan": bool(times) and not recent,
    }[op]


NEGATIONS = {"notEquals": "equals", "notContains": "contains", "notExists": "exists"}


def accepts(contact, condition, world) -> bool:
    groups = [
        all(
            [filter_accepts(contact, flt, world) for flt in group["filters"]]
            + ([accepts(contact, group["conditions"], world)] if group.get("conditions") else [])
        )
        for group in condition["groups"]
    ]
    return all(groups) if condition["logic"] == "AND" else any(groups)


def filter_accepts(contact, flt, world) -> bool:
    field, op, value, unit = flt["field"], flt["operator"], flt.get("value"), flt.get("unit")
    if op in NEGATIONS:
        return not filter_accepts(contact, {**flt, "operator": NEGATIONS[op]}, world)
    namespace, _, rest = field.partition(".")
    if field == "email":
        needle = js_string(value).lower()
        return needle == contact.email.lower() if op == "equals" else needle in contact.email
    if field == "subscribed":
        return contact.subscribed == (value is True)
    if field in ("createdAt", "updatedAt"):
        stored = contact.created_at if field == "createdAt" else contact.updated_at
        return date_test(stored, op, value, unit)
    if namespace == "data":
        return data_test(at_path(contact.data, rest.split(".")), op, value, unit)
    if namespace in ("event", "email"):
        name = rest if namespace == "event" else ACTIVITIES[rest]
        return event_test(world["events"].get((contact.pk, name), []), flt)
    target = world["segments"].get(rest)
    member = (
        target is not None
        and target.type == "DYNAMIC"
        and accepts(contact, target.condition, world)
    )
    return member if op == "memberOfSegment" else not member


# ---------------------------------------------------------------------------------------------
# Strategies

minutes_ago = st.one_of(
    st.sampled_from([0, 1, 59, 60, 61, 90, 1439, 1440, 1441, 10080, 43200, 43201, -60]),
    st.integers(-1440, 60 * 24 * 60),
)
jitter_ms = st.sampled_from([0, 0, 0, 1, -1])
moments = st.builds(lambda m, j: NOW - timedelta(minutes=m, milliseconds=j), minutes_ago, jitter_ms)
iso_strings = moments.map(iso)
day_strings = moments.map(lambda m: m.date().isoformat())
words = st.sampled_from(["pro", "Pro", "free", "pro plan", "", "a", "Z", "é", "名", "1", "true"])
strings = st.one_of(words, iso_strings, day_strings)
numbers = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.5, 1.0, 2.5, -1.5, 100]),
    st.floats(-1e3, 1e3, allow_nan=False, width=32),
)
scalars = st.one_of(st.booleans(), numbers, strings)
json_values = st.recursive(
    st.one_of(st.none(), scalars),
    lambda children: st.one_of(
        st.lists(children, max_size=2), st.dictionaries(st.sampled_from(KEYS), children, max_size=3)
    ),
    max_leaves=6,
)
contact_data = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4))
contacts = st.lists(
    st.fixed_dictionaries(
        {
            "local": st.sampled_from(["ann", "bob", "true", "x"]),
            "domain": st.sampled_from(["example.com", "acme.io"]),
            "subscribed": st.booleans(),
            "data": contact_data,
            "created_at": moments,
            "updated_at": moments,
        }
    ),
    max_size=6,
)
windows = st.tuples(
    st.one_of(st.integers(1, 60), st.sampled_from([0.5, 1.5, 24, 30, 1440])),
    st.sampled_from(["days", "hours", "minutes"]),
)


def with_window(flt, window):
    return {**flt, "value": window[0], "unit": window[1]}


def email_filters():
    contains = st.builds(
        lambda op, v: {"field": "email", "operator": op, "value": v},
        st.sampled_from(["contains", "notContains"]),
        st.sampled_from(["ANN", "@ACME", "example", "true", "x", "", "B", "bob1@"]),
    )
    equals = st.builds(
        lambda op, v: {"field": "email", "operator": op, "value": v},
        st.sampled_from(["equals", "notEquals"]),
        st.one_of(st.sampled_from(["ANN0@example.com", "x2@ACME.io", "true"]), st.booleans()),
    )
    return st.one_of(contains, equals)


def subscribed_filters():
    return st.builds(
        lambda op, v: {"field": "subscribed", "operator": op, "value": v},
        st.sampled_from(["equals", "notEquals"]),
        st.sampled_from([True, False, "true", 1, 0]),
    )


def date_filters():
    field = st.sampled_from(["createdAt", "updatedAt"])
    epoch_ms = moments.map(lambda m: int((m - EPOCH) / timedelta(milliseconds=1)))
    compared = st.builds(
        lambda f, op, v: {"field": f, "operator": op, "value": v},
        field,
        st.sampled_from(["equals", "notEquals", *COMPARE]),
        st.one_of(iso_strings, day_strings, epoch_ms),
    )
    windowed = st.builds(
        lambda f, op, w: with_window({"field": f, "operator": op}, w),
        field,
        st.sampled_from(["within", "olderThan"]),
        windows,
    )
    return st.one_of(compared, windowed)


def data_filters():
    paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(
        lambda keys: "data." + ".".join(keys)
    )
    compared = st.builds(
        lambda f, op, v: {"field": f, "operator": op, "value": v},
        paths,
        st.sampled_from(["equals", "notEquals", *COMPARE]),
        scalars,
    )
    contains = st.builds(
        lambda f, op, v: {"field": f, "operator": op, "value": v},
        paths,
        st.sampled_from(["contains", "notContains"]),
        st.sampled_from(["pro", "Pro", "", "2024-06", "T1", "名"]),
    )
    presence = st.builds(
        lambda f, op: {"field": f, "operator": op}, paths, st.sampled_from(["exists", "notExists"])
    )
    windowed = st.builds(
        lambda f, op, w: with_window({"field": f, "operator": op}, w),
        paths,
        st.sampled_from(["within", "olderThan"]),
        windows,
    )
    return st.one_of(compared, contains, presence, windowed)


def event_filters():
    fields = st.one_of(
        st.sampled_from(["event.purchase", "event.signup", "event.never", "event.email.open"]),
        st.sampled_from(sorted(ACTIVITIES)).map(lambda a: f"email.{a}"),
    )
    plain = st.builds(
        lambda f, op: {"field": f, "operator": op},
        fields,
        st.sampled_from(["triggered", "notTriggered"]),
    )
    windowed = st.builds(
        lambda f, op, w: with_window({"field": f, "operator": op}, w),
        fields,
        st.sampled_from(["triggeredWithin", "triggeredOlderThan", "notTriggeredWithin"]),
        windows,
    )
    counted = st.builds(
        lambda f, op, n, w: {
            "field": f,
            "operator": op,
            "value": n,
            **({"window": {"amount": w[0], "unit": w[1]}} if w else {}),
        },
        st.sampled_from(["event.purchase", "event.signup", "event.never"]),
        st.sampled_from(["triggeredAtLeast", "triggeredAtMost"]),
        st.integers(0, 4),
        st.one_of(st.none(), windows),
    )
    return st.one_of(plain, windowed, counted)


def segment_filters():
    """``segment.@<n>``: the n-th segment of the example, filled in by :func:`refer`."""
    return st.builds(
        lambda n, op: {"field": f"segment.@{n}", "operator": op},
        st.integers(0, 3),
        st.sampled_from(["memberOfSegment", "notMemberOfSegment"]),
    )


FILTERS = st.one_of(
    email_filters(), subscribed_filters(), date_filters(), data_filters(), event_filters(),
    segment_filters(),
)  # fmt: skip


def conditions(depth):
    group = st.builds(lambda fs: {"filters": fs}, st.lists(FILTERS, min_size=1, max_size=3))
    if depth:
        nested = st.builds(
            lambda fs, sub: {"filters": fs, "conditions": sub},
            st.lists(FILTERS, max_size=2),
            st.deferred(lambda: conditions(depth - 1)),
        )
        group = st.one_of(group, group, nested)
    return st.fixed_dictionaries(
        {"logic": st.sampled_from(["AND", "OR"]), "groups": st.lists(group, min_size=1, max_size=3)}
    )


CONDITIONS = conditions(2)
SEGMENT_CONDITIONS = conditions(1)


def refer(condition, segment_ids):
    """``condition`` with each ``segment.@<n>`` naming one of ``segment_ids`` (n modulo their
    number, so a segment refers only to those made before it)."""
    groups = []
    for group in condition["groups"]:
        filters = [
            {**flt, "field": f"segment.{segment_ids[int(flt['field'][9:]) % len(segment_ids)]}"}
            if flt["field"].startswith("segment.@")
            else flt
            for flt in group["filters"]
        ]
        nested = group.get("conditions")
        groups.append(
            {"filters": filters, **({"conditions": refer(nested, segment_ids)} if nested else {})}
        )
    return {"logic": condition["logic"], "groups": groups}


# ---------------------------------------------------------------------------------------------
# The test


def build_world(data, rows):
    project = Project.objects.create(name="p")
    people = Contact.objects.bulk_create(
        Contact(
            project=project,
            email=f"{row['local']}{i}@{row['domain']}",
            subscribed=row["subscribed"],
            data=row["data"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
        for i, row in enumerate(rows)
    )
    events = {}
    if people:
        drawn = data.draw(
            st.lists(
                st.tuples(st.sampled_from(people), st.sampled_from(EVENT_NAMES), moments),
                max_size=12,
            )
        )
        Event.objects.bulk_create(
            Event(project=project, contact=c, name=name, created_at=at) for c, name, at in drawn
        )
        for c, name, at in drawn:
            events.setdefault((c.pk, name), []).append(at)
    # Segments: STATIC (no members yet), then DYNAMIC ones referring only to earlier ones.
    static = Segment.objects.create(project=project, name="static", type="STATIC")
    ids = [str(static.id), str(uuid.uuid4())]  # an unknown id has no members
    segments = {str(static.id): static}
    for n in range(data.draw(st.integers(0, 2))):
        segment = Segment.objects.create(
            project=project,
            name=f"d{n}",
            condition=refer(data.draw(SEGMENT_CONDITIONS), ids),
        )
        ids.append(str(segment.id))
        segments[str(segment.id)] = segment
    return project, people, {"events": events, "segments": segments}, ids


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)  # fmt: skip
@given(data=st.data(), rows=contacts)
def test_sql_evaluation_equals_the_reference(db, data, rows):
    project, people, world, segment_ids = build_world(data, rows)
    condition = refer(data.draw(CONDITIONS, label="condition"), segment_ids)
    expected = {c.pk for c in people if accepts(c, condition, world)}
    note = json.dumps(condition, default=str)
    assert (
        set(contacts_matching(project, condition, now=NOW).values_list("pk", flat=True)) == expected
    ), note
    some = data.draw(st.sets(st.sampled_from([c.pk for c in people])) if people else st.just(set()))
    restricted = contacts_matching(project, condition, now=NOW, contact_ids=some)
    assert set(restricted.values_list("pk", flat=True)) == expected & some
