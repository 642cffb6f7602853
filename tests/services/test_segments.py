"""The segment engine (plunk_events.services.segments): membership rows, entry/exit events
exactly once, counts, STATIC members, and the incremental path after committed writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import plunk_events
from plunk_events import signals
from plunk_events.models import Contact, Event, Segment, SegmentMembership
from plunk_events.services import automation, contacts, segments
from plunk_events.services.errors import PlunkError, ValidationFailed
from plunk_events.services.segment_query import contacts_matching
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

PURCHASED = {
    "logic": "AND",
    "groups": [
        {
            "filters": [
                {
                    "field": "event.purchase",
                    "operator": "triggeredWithin",
                    "value": 7,
                    "unit": "days",
                }
            ]
        }
    ],
}
PRO = {
    "logic": "AND",
    "groups": [{"filters": [{"field": "data.plan", "operator": "equals", "value": "pro"}]}],
}


def tracked(project, name="Recent Buyers!", condition=PURCHASED) -> Segment:
    return Segment.objects.create(
        project=project, name=name, condition=condition, track_membership=True
    )


def contact(project, email, **data) -> Contact:
    return Contact.objects.create(project=project, email=email, data=data or None)


def names(project, suffix="") -> list[str]:
    return sorted(
        Event.objects.filter(
            project=project, name__startswith="segment.", name__endswith=suffix
        ).values_list("contact__email", flat=True)
    )


def test_compute_enters_matching_contacts_with_one_entry_event_each(project):
    segment = tracked(project, condition=PRO)
    a, b = contact(project, "a@x.io", plan="pro"), contact(project, "b@x.io", plan="pro")
    contact(project, "c@x.io", plan="free")

    assert segments.compute(segment) == {"added": 2, "removed": 0, "total": 2}
    events = Event.objects.filter(project=project, name="segment.recent-buyers.entry")
    assert sorted(e.contact_id for e in events) == sorted([a.pk, b.pk])
    assert {tuple(sorted(e.data.items())) for e in events} == {
        (("segmentId", str(segment.pk)), ("segmentName", "Recent Buyers!"))
    }
    segment.refresh_from_db()
    assert segment.member_count == 2
    # Nothing changed: nothing written.
    assert segments.compute(segment) == {"added": 0, "removed": 0, "total": 2}
    assert Event.objects.filter(project=project, name__startswith="segment.").count() == 2


def test_exit_is_soft_and_reentry_reuses_the_row(project):
    segment = tracked(project, condition=PRO)
    a = contact(project, "a@x.io", plan="pro")
    segments.compute(segment)
    row = SegmentMembership.objects.get(segment=segment, contact=a)

    Contact.objects.filter(pk=a.pk).update(data={"plan": "free"})
    assert segments.compute(segment) == {"added": 0, "removed": 1, "total": 0}
    exited = SegmentMembership.objects.get(pk=row.pk)
    assert exited.exited_at is not None
    assert names(project, ".exit") == ["a@x.io"]

    Contact.objects.filter(pk=a.pk).update(data={"plan": "pro"})
    assert segments.compute(segment) == {"added": 1, "removed": 0, "total": 1}
    again = SegmentMembership.objects.get(segment=segment, contact=a)
    assert again.pk == row.pk and again.exited_at is None and again.entered_at > row.entered_at
    assert names(project, ".entry") == ["a@x.io", "a@x.io"]


def test_compute_refuses_an_untracked_dynamic_segment(project):
    segment = Segment.objects.create(project=project, name="Live", condition=PRO)
    with pytest.raises(PlunkError) as raised:
        segments.compute(segment)
    assert raised.value.status_code == 400


def test_references_read_stored_membership_of_static_and_tracked_segments(project):
    a, b = contact(project, "a@x.io", plan="pro"), contact(project, "b@x.io", plan="pro")
    static = Segment.objects.create(project=project, name="S", type=Segment.Type.STATIC)
    segments.add_members(static, ["A@x.io "])
    member_of_static = {
        "logic": "AND",
        "groups": [{"filters": [{"field": f"segment.{static.pk}", "operator": "memberOfSegment"}]}],
    }
    assert list(contacts_matching(project, member_of_static)) == [a]
    pro = tracked(project, "Pro", PRO)  # tracked, not computed yet: no members
    member_of_pro = {
        "logic": "AND",
        "groups": [{"filters": [{"field": f"segment.{pro.pk}", "operator": "memberOfSegment"}]}],
    }
    assert list(contacts_matching(project, member_of_pro)) == []
    segments.compute(pro)
    assert sorted(c.email for c in contacts_matching(project, member_of_pro)) == [a.email, b.email]


def test_full_compute_is_a_few_statements_per_thousand_contacts(project):
    now = timezone.now()
    Contact.objects.bulk_create(
        Contact(project=project, email=f"c{i}@x.io", data={"plan": "pro"}, created_at=now)
        for i in range(2500)
    )
    segment = tracked(project, condition=PRO)
    with CaptureQueriesContext(connection) as captured:
        assert segments.compute(segment)["added"] == 2500
    sqls = [q["sql"] for q in captured.captured_queries]
    sqls = [q for q in sqls if not q.startswith(("SAVEPOINT", "RELEASE"))]
    if connection.vendor == "sqlite":
        # SQLite caps the variables of a statement: events go 142 rows per INSERT there.
        sqls = [q for q in sqls if not q.startswith('INSERT INTO "plunk_events_event"')]
        assert len(sqls) <= 2 + 3 + 2, [q[:60] for q in sqls]
    else:
        # 2 SELECTs (to enter, to exit); per 1,000 the membership write and one COPY of the
        # events; the count.
        assert len(sqls) <= 2 + 2 * 3 + 2, [q[:60] for q in sqls]


def test_reevaluating_a_contact_against_20_segments_is_three_selects(project):
    for i in range(20):
        tracked(project, f"S{i}", PRO)
    a = contact(project, "a@x.io", plan="pro")
    segments.reevaluate(project, [a.pk])
    assert SegmentMembership.objects.filter(contact=a, exited_at=None).count() == 20
    with CaptureQueriesContext(connection) as captured:
        result = segments.reevaluate(project, [a.pk])
    assert (result.entered, result.exited) == (0, 0)
    # the segments; one SELECT evaluating all their conditions; the contact's memberships
    assert len(captured.captured_queries) == 3


def test_static_add_and_remove(project):
    static = Segment.objects.create(project=project, name="VIP", type=Segment.Type.STATIC)
    contact(project, "a@x.io")
    result = segments.add_members(static, [" A@X.io", "a@x.io", "new@x.io", "ghost@x.io"])
    assert result == {"added": 1, "created": 0, "notFound": ["new@x.io", "ghost@x.io"]}
    result = segments.add_members(
        static, ["a@x.io", "New@x.io"], create_missing=True, subscribed=False
    )
    assert result == {"added": 1, "created": 1, "notFound": []}
    assert Contact.objects.get(project=project, email="new@x.io").subscribed is False
    static.refresh_from_db()
    assert static.member_count == 2
    assert segments.remove_members(static, ["NEW@x.io", "ghost@x.io"]) == {"removed": 1}
    static.refresh_from_db()
    assert static.member_count == 1
    assert [c.email for c in segments.members(static).contacts] == ["a@x.io"]
    assert not Event.objects.filter(project=project, name__startswith="segment.").exists()


def test_static_add_with_an_invalid_email_to_create_writes_nothing(project):
    static = Segment.objects.create(project=project, name="VIP", type=Segment.Type.STATIC)
    with pytest.raises(ValidationFailed):
        segments.add_members(static, ["ok@x.io", "not an email"], create_missing=True)
    assert not Contact.objects.filter(project=project).exists()


def test_members_of_a_dynamic_segment_are_refused(project):
    with pytest.raises(PlunkError):
        segments.add_members(tracked(project), ["a@x.io"])


def test_members_pages_and_counts(project):
    for i in range(5):
        contact(project, f"c{i}@x.io", plan="pro")
    live = Segment.objects.create(project=project, name="Live", condition=PRO)
    page = segments.members(live, page=2, page_size=2)
    assert (page.total, page.total_pages, len(page.contacts)) == (5, 3, 2)
    assert segments.refresh_count(live) == 5
    assert segments.members(live, page_size=1000).page_size == 100


def test_committed_track_reevaluates_its_contact(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        segment = automation.create_segment(
            project, name="Buyers", condition=PURCHASED, track_membership=True
        )
    entered = []
    signals.segment_entered.connect(lambda **kw: entered.append(kw["contact"].email), weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            plunk_events.track(project, "a@x.io", "purchase")
    finally:
        signals.segment_entered.receivers.clear()
    segment.refresh_from_db()
    assert segment.member_count == 1
    assert names(project, ".entry") == ["a@x.io"]
    assert entered == ["a@x.io"]


def test_a_track_without_tracked_segments_enqueues_nothing(
    project, django_capture_on_commit_callbacks
):
    Segment.objects.create(project=project, name="Live", condition=PURCHASED)
    with django_capture_on_commit_callbacks() as callbacks:
        plunk_events.track(project, "a@x.io", "purchase")
    assert callbacks == []


def test_entry_events_are_re_evaluated_once_no_loop(project, django_capture_on_commit_callbacks):
    first = tracked(project, "First", PURCHASED)
    on_entry = {
        "logic": "AND",
        "groups": [{"filters": [{"field": "event.segment.first.entry", "operator": "triggered"}]}],
    }
    second = tracked(project, "Second", on_entry)
    with django_capture_on_commit_callbacks(execute=True):
        plunk_events.track(project, "a@x.io", "purchase")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.member_count, second.member_count) == (1, 1)
    assert names(project, ".entry") == ["a@x.io", "a@x.io"]


def test_contact_delete_refreshes_counts(project, django_capture_on_commit_callbacks):
    segment = tracked(project, condition=PRO)
    a = contact(project, "a@x.io", plan="pro")
    segments.compute(segment)
    with django_capture_on_commit_callbacks(execute=True):
        contacts.delete_contact(project, a.pk)
    segment.refresh_from_db()
    assert segment.member_count == 0


def test_recompute_all_catches_expired_windows(project):
    segment = tracked(project)
    a = contact(project, "a@x.io")
    Event.objects.create(project=project, contact=a, name="purchase")
    untracked = Segment.objects.create(project=project, name="Live", condition=PURCHASED)
    assert segments.recompute_all()["computed"] >= 1
    segment.refresh_from_db()
    untracked.refresh_from_db()
    assert (segment.member_count, untracked.member_count) == (1, 1)
    Event.objects.filter(name="purchase").update(created_at=timezone.now() - timedelta(days=8))
    segments.recompute_all()
    segment.refresh_from_db()
    untracked.refresh_from_db()
    assert (segment.member_count, untracked.member_count) == (0, 0)
    assert names(project, ".exit") == ["a@x.io"]


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_computes_record_each_entry_and_exit_once(project):
    segment = tracked(project, condition=PRO)
    Contact.objects.bulk_create(
        Contact(project=project, email=f"c{i}@x.io", data={"plan": "pro"}) for i in range(300)
    )
    for _round in range(2):
        run_at_once(lambda: segments.compute(Segment.objects.get(pk=segment.pk)), 4)
        assert Event.objects.filter(name="segment.recent-buyers.entry").count() == 300
        Contact.objects.filter(project=project, email__lt="c2").update(data={"plan": "free"})
    exits = Event.objects.filter(name="segment.recent-buyers.exit").count()
    assert exits == Contact.objects.filter(email__lt="c2").count()
    segment.refresh_from_db()
    assert segment.member_count == 300 - exits
