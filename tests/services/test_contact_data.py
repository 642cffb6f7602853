"""Property test of the contact-data merge rule of ``POST /v1/track``.

Random existing data × random incoming data (nested objects, nulls, empty strings, reserved
keys, non-persistent wrappers, unicode keys): the data the general (Python) track path stores
equals a tiny reference function written here, on both databases; on PostgreSQL the
one-statement (SQL) path stores the same as the Python path.
"""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plunk_events.constants import RESERVED_DATA_KEYS
from plunk_events.models import Contact
from plunk_events.services import ingest
from plunk_events.services.validation import parse_track

pytestmark = pytest.mark.django_db


def reference_merge(existing: dict | None, incoming: dict | None) -> dict | None:
    """Plunk's rule, key by key: skip reserved keys and "", null deletes, a non-persistent
    wrapper stays off the contact, a persistent one is unwrapped, anything else replaces."""
    result = dict(existing or {})
    for key, value in (incoming or {}).items():
        if key in RESERVED_DATA_KEYS or value == "":
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and set(value) >= {"value", "persistent"}:
            if value["persistent"]:
                result[key] = value["value"]
        else:
            result[key] = value
    return result or None


# Text both databases store: no NUL, no lone surrogates.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
# ``locale`` must be a string (a validation rule, not a merge rule), so it is left out.
keys = st.one_of(st.sampled_from(["plan", "a", "ключ", "名前", "x y", ""]), text).filter(
    lambda key: key != "locale"
)
all_keys = st.one_of(keys, st.sampled_from(sorted(RESERVED_DATA_KEYS)))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.just(""), text,
    st.floats(-1e6, 1e6, width=32),  # jsonb keeps these exactly (1e16 comes back an int)
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(all_keys, children, max_size=3)
    ),
    max_leaves=8,
)
wrapped = st.fixed_dictionaries({"value": json_values, "persistent": st.booleans()})
stored_data = st.one_of(
    st.none(), st.dictionaries(keys, json_values.filter(lambda v: v not in (None, "")), max_size=5)
)
incoming_data = st.one_of(
    st.none(), st.dictionaries(all_keys, st.one_of(json_values, wrapped), max_size=6)
)

_emails = (f"c{n}@example.com" for n in itertools.count())


def tracked_data(project, existing, incoming, *, general_path: bool):
    email = next(_emails)
    if existing is not ...:
        Contact.objects.create(project=project, email=email, data=existing)
    body = {"email": email, "event": "merge"}
    if incoming is not None:
        body["data"] = incoming
    key = f"k-{email}" if general_path else None
    ingest.track(project, parse_track(body), idempotency_key=key)
    return Contact.objects.get(project=project, email=email).data


examples = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@examples
@given(existing=st.one_of(st.just(...), stored_data), incoming=incoming_data)
def test_python_path_follows_the_reference_rule(project, existing, incoming):
    stored = tracked_data(project, existing, incoming, general_path=True)
    assert stored == reference_merge(None if existing is ... else existing, incoming)


@pytest.mark.requires_postgres
@examples
@given(existing=st.one_of(st.just(...), stored_data), incoming=incoming_data)
def test_sql_path_stores_what_the_python_path_stores(project, existing, incoming):
    assert connection.vendor == "postgresql"
    by_sql = tracked_data(project, existing, incoming, general_path=False)
    by_python = tracked_data(project, existing, incoming, general_path=True)
    assert by_sql == by_python
