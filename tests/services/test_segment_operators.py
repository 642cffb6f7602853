"""Segment evaluation, operator by operator: each test names the rule it pins
(``services/segment_query.py``); the property test (``test_segment_query.py``) covers the
combinations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from plunk_events.models import Contact, Event, Segment
from plunk_events.services.errors import ValidationFailed
from plunk_events.services.segment_query import contacts_matching

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 6, 15, 12, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture
def people(project):
    """Contacts named by their email's local part; ``make(name, **fields)``."""

    def make(name, *, data=None, subscribed=True, created_at=NOW, updated_at=NOW):
        return Contact.objects.create(
            project=project,
            email=f"{name}@example.com",
            data=data,
            subscribed=subscribed,
            created_at=created_at,
            updated_at=updated_at,
        )

    return make


def event(project, contact, name, ago=timedelta(0)):
    Event.objects.create(project=project, contact=contact, name=name, created_at=NOW - ago)


def match(project, *filters, logic="AND", **extra):
    condition = {"logic": logic, "groups": [{"filters": list(filters)}]}
    contacts = contacts_matching(project, condition, now=NOW, **extra)
    return {c.email.split("@")[0] for c in contacts}


def f(field, operator, value=..., **extra):
    flt = {"field": field, "operator": operator, **extra}
    if value is not ...:
        flt["value"] = value
    return flt


# ---------------------------------------------------------------------------------------------
# email, subscribed, createdAt/updatedAt


def test_email_comparisons_are_case_insensitive(project, people):
    people("ann")
    people("bob")
    assert match(project, f("email", "equals", "ANN@Example.COM")) == {"ann"}
    assert match(project, f("email", "notEquals", "ann@example.com")) == {"bob"}
    assert match(project, f("email", "contains", "NN@")) == {"ann"}
    assert match(project, f("email", "notContains", "B")) == {"ann"}


def test_email_value_is_stringified_like_javascript(project, people):
    people("true")
    people("x1")
    assert match(project, f("email", "contains", "true")) == {"true"}
    assert match(project, f("email", "equals", True)) == set()
    assert match(project, f("email", "contains", "x1@")) == {"x1"}


def test_subscribed_equals_true_only_for_the_boolean_true(project, people):
    people("on", subscribed=True)
    people("off", subscribed=False)
    assert match(project, f("subscribed", "equals", True)) == {"on"}
    assert match(project, f("subscribed", "equals", "true")) == {"off"}
    assert match(project, f("subscribed", "equals", False)) == {"off"}
    assert match(project, f("subscribed", "notEquals", True)) == {"off"}
    assert match(project, f("subscribed", "notEquals", "true")) == {"on"}


def test_created_at_equals_a_date_means_the_whole_utc_day(project, people):
    people("start", created_at=datetime(2024, 1, 15, 0, 0, tzinfo=UTC))
    people("end", created_at=datetime(2024, 1, 15, 23, 59, 59, 999999, tzinfo=UTC))
    people("next", created_at=datetime(2024, 1, 16, tzinfo=UTC))
    assert match(project, f("createdAt", "equals", "2024-01-15")) == {"start", "end"}
    assert match(project, f("createdAt", "equals", "2024-01-15T18:00:00.000Z")) == {"start", "end"}
    assert match(project, f("createdAt", "notEquals", "2024-01-15")) == {"next"}


def test_created_at_equals_a_timestamp_is_exact(project, people):
    at = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    people("exact", created_at=at)
    people("later", created_at=at + timedelta(milliseconds=1))
    millis = int(at.timestamp() * 1000)
    assert match(project, f("createdAt", "equals", millis)) == {"exact"}
    assert match(project, f("createdAt", "notEquals", millis)) == {"later"}


def test_updated_at_orderings(project, people):
    people("old", updated_at=datetime(2024, 1, 1, tzinfo=UTC))
    people("new", updated_at=datetime(2024, 3, 1, tzinfo=UTC))
    assert match(project, f("updatedAt", "greaterThan", "2024-01-01")) == {"new"}
    assert match(project, f("updatedAt", "greaterThanOrEqual", "2024-01-01")) == {"old", "new"}
    assert match(project, f("updatedAt", "lessThan", "2024-03-01T00:00:00Z")) == {"old"}
    assert match(project, f("updatedAt", "lessThanOrEqual", "2024-03-01T00:00:00Z")) == {
        "old",
        "new",
    }


def test_created_at_within_and_older_than_count_back_from_now(project, people):
    people("edge", created_at=NOW - timedelta(days=7))
    people("inside", created_at=NOW - timedelta(days=7) + timedelta(microseconds=1))
    people("before", created_at=NOW - timedelta(days=7, microseconds=1))
    week = {"value": 7, "unit": "days"}
    assert match(project, f("createdAt", "within", **week)) == {"edge", "inside"}
    assert match(project, f("createdAt", "olderThan", **week)) == {"before"}
    assert match(project, f("createdAt", "within", value=168, unit="hours")) == {"edge", "inside"}
    assert match(project, f("createdAt", "within", value=7 * 1440, unit="minutes")) == {
        "edge",
        "inside",
    }


def test_a_window_longer_than_the_calendar_reaches_back_to_year_one(project, people):
    people("ancient", created_at=datetime(1, 1, 2, tzinfo=UTC))
    assert match(project, f("createdAt", "within", value=1e300, unit="days")) == {"ancient"}
    assert match(project, f("createdAt", "olderThan", value=1e300, unit="days")) == set()


# ---------------------------------------------------------------------------------------------
# data.<path>


@pytest.fixture
def typed(people):
    """One contact per JSON type of ``data.v``, plus one without it and one without data."""
    for name, value in [
        ("int", 1),
        ("float", 1.0),
        ("half", 1.5),
        ("str", "1"),
        ("true", True),
        ("false", False),
        ("null", None),
        ("list", [1]),
        ("obj", {"a": 1}),
    ]:
        people(name, data={"v": value})
    people("missing", data={"other": 1})
    people("nodata", data=None)


def test_data_equals_is_type_strict(project, typed):
    assert match(project, f("data.v", "equals", 1)) == {"int", "float"}
    assert match(project, f("data.v", "equals", 1.0)) == {"int", "float"}
    assert match(project, f("data.v", "equals", "1")) == {"str"}
    assert match(project, f("data.v", "equals", True)) == {"true"}
    assert match(project, f("data.v", "equals", False)) == {"false"}


def test_data_not_equals_is_the_exact_negation(project, typed):
    everyone = match(project, f("email", "contains", "@"))
    assert match(project, f("data.v", "notEquals", True)) == everyone - {"true"}
    assert match(project, f("data.v", "notEquals", 1)) == everyone - {"int", "float"}


def test_data_orderings_compare_within_the_value_type(project, typed, people):
    people("word", data={"v": "apple"})
    assert match(project, f("data.v", "greaterThan", 1)) == {"half"}
    assert match(project, f("data.v", "greaterThanOrEqual", 1)) == {"int", "float", "half"}
    assert match(project, f("data.v", "lessThan", 1.5)) == {"int", "float"}
    assert match(project, f("data.v", "lessThanOrEqual", 0)) == set()
    assert match(project, f("data.v", "greaterThan", "1")) == {"word"}
    assert match(project, f("data.v", "lessThan", "apple")) == {"str"}
    assert match(project, f("data.v", "greaterThan", False)) == {"true"}
    assert match(project, f("data.v", "lessThanOrEqual", True)) == {"true", "false"}


def test_data_strings_compare_by_code_point(project, people):
    for name, value in [("upper", "Z"), ("lower", "a"), ("accent", "é"), ("cjk", "名")]:
        people(name, data={"v": value})
    assert match(project, f("data.v", "lessThan", "a")) == {"upper"}
    assert match(project, f("data.v", "greaterThan", "z")) == {"accent", "cjk"}
    assert match(project, f("data.v", "greaterThan", "é")) == {"cjk"}


def test_data_contains_is_case_sensitive_and_for_strings_only(project, people):
    people("pro", data={"plan": "Pro plan"})
    people("num", data={"plan": 100})
    people("none")
    assert match(project, f("data.plan", "contains", "Pro")) == {"pro"}
    assert match(project, f("data.plan", "contains", "pro")) == set()
    assert match(project, f("data.plan", "contains", "10")) == set()
    assert match(project, f("data.plan", "contains", "")) == {"pro"}
    assert match(project, f("data.plan", "contains", "%")) == set()
    assert match(project, f("data.plan", "notContains", "Pro")) == {"num", "none"}


def test_data_exists_means_present_and_not_null(project, typed):
    everyone = match(project, f("email", "contains", "@"))
    assert match(project, f("data.v", "exists")) == everyone - {"null", "missing", "nodata"}
    assert match(project, f("data.v", "notExists")) == {"null", "missing", "nodata"}


def test_data_paths_walk_nested_objects_only(project, people):
    people("nested", data={"address": {"city": "Oslo", "0": "zero"}})
    people("flat", data={"address.city": "Oslo"})
    people("array", data={"address": ["Oslo"]})
    people("scalar", data={"address": "Oslo"})
    assert match(project, f("data.address.city", "equals", "Oslo")) == {"nested"}
    assert match(project, f("data.address.0", "equals", "zero")) == {"nested"}
    assert match(project, f("data.address.0", "exists")) == {"nested"}


def test_data_keys_with_spaces_and_unicode(project, people):
    people("spaced", data={"first name": {"ключ": "名前"}})
    assert match(project, f("data.first name.ключ", "equals", "名前")) == {"spaced"}


def test_data_equals_a_date_matches_strings_of_that_utc_day(project, people):
    people("stamp", data={"d": "2024-01-15T23:59:59.999Z"})
    people("bare", data={"d": "2024-01-15"})
    people("next", data={"d": "2024-01-16T00:00:00.000Z"})
    people("prev", data={"d": "2024-01-14T23:59:59.999Z"})
    people("number", data={"d": 20240115})
    assert match(project, f("data.d", "equals", "2024-01-15")) == {"stamp", "bare"}
    assert match(project, f("data.d", "equals", "2024-01-15T08:00:00Z")) == {"stamp", "bare"}
    assert match(project, f("data.d", "notEquals", "2024-01-15")) == {"next", "prev", "number"}


def test_data_within_compares_iso_strings_with_to_iso_string(project, people):
    cutoff = "2024-06-14T12:00:00.123Z"  # NOW - 1 day, as toISOString() writes it
    people("edge", data={"seen": cutoff})
    people("after", data={"seen": "2024-06-14T12:00:00.124Z"})
    people("before", data={"seen": "2024-06-14T12:00:00.122Z"})
    people("number", data={"seen": 1})
    assert match(project, f("data.seen", "within", value=1, unit="days")) == {"edge", "after"}
    assert match(project, f("data.seen", "olderThan", value=24, unit="hours")) == {"before"}


# ---------------------------------------------------------------------------------------------
# event.<name>, the count extension, email.<activity>


@pytest.fixture
def buyers(project, people):
    """``recent`` bought 1 day ago, ``old`` 40 days ago, ``both`` both, ``never`` never."""
    recent, old, both = people("recent"), people("old"), people("both")
    people("never")
    event(project, recent, "purchase", timedelta(days=1))
    event(project, old, "purchase", timedelta(days=40))
    event(project, both, "purchase", timedelta(days=1))
    event(project, both, "purchase", timedelta(days=40))
    event(project, people("other"), "signup")


MONTH = {"value": 30, "unit": "days"}


def test_triggered_and_not_triggered(project, buyers):
    assert match(project, f("event.purchase", "triggered")) == {"recent", "old", "both"}
    assert match(project, f("event.purchase", "notTriggered")) == {"never", "other"}


def test_triggered_within(project, buyers):
    assert match(project, f("event.purchase", "triggeredWithin", **MONTH)) == {"recent", "both"}


def test_triggered_older_than_means_ever_but_not_since_the_cutoff(project, buyers):
    assert match(project, f("event.purchase", "triggeredOlderThan", **MONTH)) == {"old"}


def test_not_triggered_within_includes_never(project, buyers):
    expected = {"old", "never", "other"}
    assert match(project, f("event.purchase", "notTriggeredWithin", **MONTH)) == expected


def test_event_windows_include_the_cutoff_instant(project, people):
    event(project, people("edge"), "login", timedelta(minutes=90))
    event(project, people("past"), "login", timedelta(minutes=90, microseconds=1))
    assert match(project, f("event.login", "triggeredWithin", value=90, unit="minutes")) == {"edge"}
    assert match(project, f("event.login", "triggeredWithin", value=1.5, unit="hours")) == {"edge"}


def test_event_names_are_exact(project, people):
    event(project, people("upper"), "Purchase")
    assert match(project, f("event.purchase", "triggered")) == set()


def test_events_of_another_project_do_not_count(project, other_project, people):
    ann = people("ann")
    Event.objects.create(project=other_project, contact=ann, name="purchase", created_at=NOW)
    assert match(project, f("event.purchase", "triggered")) == set()


def test_triggered_at_least_counts_events(project, buyers):
    assert match(project, f("event.purchase", "triggeredAtLeast", 2)) == {"both"}
    assert match(project, f("event.purchase", "triggeredAtLeast", 1)) == {"recent", "old", "both"}
    everyone = {"recent", "old", "both", "never", "other"}
    assert match(project, f("event.purchase", "triggeredAtLeast", 0)) == everyone


def test_triggered_at_most_includes_zero(project, buyers):
    assert match(project, f("event.purchase", "triggeredAtMost", 1)) == {
        "recent",
        "old",
        "never",
        "other",
    }
    assert match(project, f("event.purchase", "triggeredAtMost", 0)) == {"never", "other"}


def test_count_window_counts_only_recent_events(project, buyers):
    window = {"amount": 30, "unit": "days"}
    assert match(project, f("event.purchase", "triggeredAtLeast", 1, window=window)) == {
        "recent",
        "both",
    }
    assert match(project, f("event.purchase", "triggeredAtLeast", 2, window=window)) == set()
    at_most = f("event.purchase", "triggeredAtMost", 0, window={"amount": 720, "unit": "hours"})
    assert match(project, at_most) == {"old", "never", "other"}


@pytest.mark.parametrize(
    ("activity", "name"),
    [
        ("open", "email.open"), ("opened", "email.open"), ("click", "email.click"),
        ("clicked", "email.click"), ("bounce", "email.bounce"), ("bounced", "email.bounce"),
        ("complaint", "email.complaint"), ("complained", "email.complaint"),
        ("sent", "email.sent"), ("delivery", "email.delivery"), ("delivered", "email.delivery"),
    ],
)  # fmt: skip
def test_email_activity_reads_the_email_events(project, people, activity, name):
    event(project, people("yes"), name, timedelta(days=2))
    event(project, people("other"), "email.unknown")
    people("no")
    field = f"email.{activity}"
    assert match(project, f(field, "triggered")) == {"yes"}
    assert match(project, f(field, "notTriggered")) == {"other", "no"}
    assert match(project, f(field, "triggeredWithin", value=3, unit="days")) == {"yes"}
    assert match(project, f(field, "triggeredOlderThan", value=1, unit="days")) == {"yes"}
    assert match(project, f(field, "notTriggeredWithin", value=1, unit="days")) == {
        "yes",
        "other",
        "no",
    }


# ---------------------------------------------------------------------------------------------
# segment.<id>, groups, contact_ids


def segment(project, condition=None, **fields):
    kind = Segment.Type.STATIC if condition is None else Segment.Type.DYNAMIC
    return Segment.objects.create(
        project=project, name="s", type=kind, condition=condition, **fields
    )


def test_member_of_an_untracked_dynamic_segment_inlines_its_condition(project, people):
    people("pro", data={"plan": "pro"})
    people("free", data={"plan": "free"})
    pros = segment(
        project, {"logic": "AND", "groups": [{"filters": [f("data.plan", "equals", "pro")]}]}
    )
    assert match(project, f(f"segment.{pros.id}", "memberOfSegment")) == {"pro"}
    assert match(project, f(f"segment.{pros.id}", "notMemberOfSegment")) == {"free"}


def test_a_lookup_answering_none_inlines_even_a_tracked_segment(project, people):
    people("pro", data={"plan": "pro"})
    condition = {"logic": "AND", "groups": [{"filters": [f("data.plan", "equals", "pro")]}]}
    pros = segment(project, condition, track_membership=True)
    inline = f(f"segment.{pros.id}", "memberOfSegment")
    assert match(project, inline, membership=lambda s: None) == {"pro"}


def test_a_static_segment_without_members(project, people):
    people("ann")
    static = segment(project)
    assert match(project, f(f"segment.{static.id}", "memberOfSegment")) == set()
    assert match(project, f(f"segment.{static.id}", "notMemberOfSegment")) == {"ann"}


def test_the_membership_hook_decides_how_targets_are_read(project, people):
    from django.db.models import Q

    ann, _ = people("ann"), people("bob")
    static = segment(project)
    stored = f(f"segment.{static.id}", "memberOfSegment")
    assert match(project, stored, membership=lambda s: Q(pk=ann.pk)) == {"ann"}


def test_segments_of_another_project_or_unknown_ids_have_no_members(project, other_project, people):
    people("ann")
    theirs = segment(
        other_project, {"logic": "AND", "groups": [{"filters": [f("email", "contains", "@")]}]}
    )
    for ref in (
        f"segment.{theirs.id}",
        "segment.nope",
        "segment.00000000-0000-0000-0000-000000000000",
    ):
        assert match(project, f(ref, "memberOfSegment")) == set()
        assert match(project, f(ref, "notMemberOfSegment")) == {"ann"}


def test_a_cycle_met_at_evaluation_is_a_validation_error(project, people):
    a = segment(project, {"logic": "AND", "groups": [{"filters": [f("email", "contains", "@")]}]})
    b = segment(
        project,
        {"logic": "AND", "groups": [{"filters": [f(f"segment.{a.id}", "memberOfSegment")]}]},
    )
    a.condition = {
        "logic": "AND",
        "groups": [{"filters": [f(f"segment.{b.id}", "memberOfSegment")]}],
    }
    a.save()  # behind the service's back: the service refuses this
    with pytest.raises(ValidationFailed) as refused:
        match(project, f("email", "contains", "@"), f(f"segment.{a.id}", "memberOfSegment"))
    assert refused.value.errors == [
        {"field": "condition.groups.0.filters.1.field", "message": "Circular segment reference detected", "code": "custom"}
    ]  # fmt: skip


def test_groups_and_nesting(project, people):
    people("a", data={"x": 1, "y": 1})
    people("b", data={"x": 1})
    people("c", data={"y": 1})
    people("d")
    x, y = f("data.x", "exists"), f("data.y", "exists")
    both = {"logic": "AND", "groups": [{"filters": [x, y]}]}
    either = {"logic": "OR", "groups": [{"filters": [x]}, {"filters": [y]}]}
    and_groups = {"logic": "AND", "groups": [{"filters": [x]}, {"filters": [y]}]}
    nested = {"logic": "OR", "groups": [{"filters": [f("email", "contains", "d@")]}, {"filters": [x], "conditions": {"logic": "OR", "groups": [{"filters": [y]}, {"filters": [f("email", "contains", "b")]}]}}]}  # fmt: skip
    only_nested = {"logic": "AND", "groups": [{"filters": [], "conditions": either}]}

    def run(condition):
        return {c.email[0] for c in contacts_matching(project, condition, now=NOW)}

    assert run(both) == run(and_groups) == {"a"}
    assert run(either) == run(only_nested) == {"a", "b", "c"}
    assert run(nested) == {"a", "b", "d"}


def test_contact_ids_restrict_the_answer(project, people):
    ann, bob = people("ann"), people("bob")
    people("cid")
    assert match(project, f("email", "contains", "@"), contact_ids=[ann.pk, bob.pk]) == {
        "ann",
        "bob",
    }
    assert match(project, f("email", "contains", "@"), contact_ids=[]) == set()


def test_other_projects_contacts_never_match(project, other_project, people):
    Contact.objects.create(project=other_project, email="x@example.com")
    people("ann")
    assert match(project, f("email", "contains", "@")) == {"ann"}


def test_an_invalid_condition_is_refused(project):
    with pytest.raises(ValidationFailed):
        contacts_matching(project, {"logic": "AND", "groups": []})


def test_one_query_whatever_the_tree(project, people, django_assert_num_queries):
    people("ann")
    target = segment(
        project, {"logic": "AND", "groups": [{"filters": [f("event.a", "triggered")]}]}
    )
    condition = {"logic": "OR", "groups": [
        {"filters": [f("event.purchase", "triggeredWithin", value=30, unit="days"), f("data.plan", "equals", "pro")]},
        {"filters": [f("event.b", "triggeredAtLeast", 3)], "conditions": {"logic": "AND", "groups": [{"filters": [f(f"segment.{target.id}", "memberOfSegment")]}]}},
    ]}  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        contacts = contacts_matching(project, condition, now=NOW)
    assert len(queries) == 1  # reading the referenced segments
    with django_assert_num_queries(1):
        assert contacts.count() == 0
