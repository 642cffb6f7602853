"""The segment engine: membership of STATIC and tracked DYNAMIC segments, kept current.

* :func:`compute` recomputes a tracked segment from scratch, set-based: the contacts to enter
  and to exit are two SELECTs, then each chunk of up to 1,000 is one conditional write plus one
  event insert (:mod:`.membership`), then one UPDATE of the count.
* :func:`reevaluate` is the incremental path: given the contacts a committed write touched, one
  SELECT answers, for each of them and each tracked DYNAMIC segment of the project, "matches?",
  another "member?"; only the differences are written. The dispatcher (:mod:`.dispatch`) runs
  it for the contacts of new events, :func:`.reevaluation.contacts_changed` for contact writes
  without events; neither costs anything inside the write.
* :func:`recompute_all` is the periodic job (``SEGMENT_RECOMPUTE_SECONDS``): it catches time
  windows that expire without any event, and refreshes the cached counts of untracked segments.
* :func:`add_members` / :func:`remove_members` (STATIC), :func:`members`, :func:`refresh_count`.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef
from django.utils import timezone

from ..models import Contact, Project, Segment, SegmentMembership
from . import membership, segment_query
from .contacts import upsert_contact
from .db import db_for_write
from .errors import FieldErrorList, PlunkError, ValidationFailed
from .reevaluation import tracked_segments
from .validation import check_email

logger = logging.getLogger(__name__)

#: Longest ``pageSize`` of ``GET /segments/<id>/contacts``, and most emails per members call.
MAX_PAGE_SIZE = 100
MAX_EMAILS = 500


# ---------------------------------------------------------------------------------------------
# Full compute


def _require_tracked(segment: Segment) -> None:
    if not membership.stores_membership(segment):
        raise PlunkError("Membership tracking is not enabled for this segment", code="BAD_REQUEST")


def compute(segment: Segment, *, now: datetime | None = None) -> dict[str, int]:
    """Recompute a STATIC or tracked segment: ``{added, removed, total}`` (400 if untracked).

    STATIC segments are only recounted. A DYNAMIC one enters the matching contacts that are
    not members and exits the members that no longer match, each with its event.
    """
    _require_tracked(segment)
    alias = db_for_write()
    now = now or timezone.now()
    added: list[uuid.UUID] = []
    removed: list[uuid.UUID] = []
    if segment.type == Segment.Type.DYNAMIC:
        project = Project(pk=segment.project_id)
        matching = segment_query.contacts_matching(
            project, segment.condition, now=now, using=alias
        ).order_by()
        active = membership.active_rows(segment, alias)
        to_add = list(
            matching.exclude(Exists(active.filter(contact=OuterRef("pk")))).values_list(
                "pk", flat=True
            )
        )
        to_remove = list(
            active.exclude(Exists(matching.filter(pk=OuterRef("contact_id"))))
            .order_by()
            .values_list("contact_id", flat=True)
        )
        added = membership.transition(alias, segment, membership.ENTRY, to_add, now)
        removed = membership.transition(alias, segment, membership.EXIT, to_remove, now)
    total = membership.recount(alias, [segment])[segment.pk]
    return {"added": len(added), "removed": len(removed), "total": total}


def refresh_count(segment: Segment) -> int:
    """Store and return the current member count: stored rows, or a live count if untracked."""
    alias = db_for_write()
    if membership.stores_membership(segment):
        return membership.recount(alias, [segment])[segment.pk]
    count = segment_query.contacts_matching(
        Project(pk=segment.project_id), segment.condition, using=alias
    ).count()
    Segment.objects.using(alias).filter(pk=segment.pk).update(member_count=count)
    segment.member_count = count
    return count


def recompute_all() -> dict[str, int]:
    """The periodic job: compute every tracked DYNAMIC segment, recount the others.

    A segment whose condition fails (it references something gone) is logged and skipped.
    """
    alias = db_for_write()
    computed = counted = failed = 0
    for segment in Segment.objects.using(alias).order_by("project_id", "created_at"):
        try:
            if segment.type == Segment.Type.DYNAMIC and segment.track_membership:
                compute(segment)
                computed += 1
            else:
                refresh_count(segment)
                counted += 1
        except (ValidationFailed, PlunkError):
            logger.warning("Segment %s could not be evaluated", segment.pk, exc_info=True)
            failed += 1
    return {"computed": computed, "counted": counted, "failed": failed}


# ---------------------------------------------------------------------------------------------
# Incremental re-evaluation


def references_segments(condition: Any) -> bool:
    """Whether a condition reads other segments or their entry/exit events."""
    if isinstance(condition, dict):
        field = condition.get("field")
        if isinstance(field, str) and field.startswith(("segment.", "event.segment.")):
            return True
        return any(references_segments(v) for v in condition.values())
    if isinstance(condition, list):
        return any(references_segments(v) for v in condition)
    return False


@dataclass
class Reevaluation:
    entered: int = 0
    exited: int = 0
    changed_contacts: set | None = None

    def as_dict(self) -> dict[str, int]:
        return {"entered": self.entered, "exited": self.exited}


def reevaluate(
    project: Project | Any, contact_ids: Iterable[Any], *, now: datetime | None = None
) -> Reevaluation:
    """Re-evaluate these contacts against every tracked DYNAMIC segment of the project.

    One SELECT reads, per contact and segment, whether it matches (every condition is a column
    of the same statement), another which of them are members; only the differences are written (:func:`.membership.transition`). Idempotent: running it
    twice, or concurrently, records each entry and exit once. Contacts that no longer exist
    lost their rows with them: the counts are refreshed.
    """
    alias = db_for_write()
    project_id = getattr(project, "pk", project)
    project = Project(pk=project_id)
    now = now or timezone.now()
    ids = list(dict.fromkeys(membership._uuid(i) for i in contact_ids))
    result = Reevaluation(changed_contacts=set())
    segments = list(tracked_segments(project_id, alias))
    if not ids or not segments:
        return result
    compiler = segment_query.ConditionCompiler(project, now=now, using=alias)
    annotations: dict[str, Any] = {}
    evaluated: list[tuple[str, Segment]] = []
    for index, segment in enumerate(segments):
        try:
            [matches] = compiler.compile([segment.condition])
        except ValidationFailed:
            logger.warning("Segment %s could not be evaluated", segment.pk, exc_info=True)
            continue
        annotations[f"m{index}"] = ExpressionWrapper(matches, output_field=BooleanField())
        evaluated.append((f"m{index}", segment))
    rows = list(
        Contact.objects.using(alias)
        .filter(project_id=project_id, pk__in=ids)
        .annotate(**annotations)
        .values("pk", *annotations)
    )
    memberships = set(
        SegmentMembership.objects.using(alias)
        .filter(
            project_id=project_id,
            contact_id__in=[r["pk"] for r in rows],
            segment__in=[s for _, s in evaluated],
            exited_at__isnull=True,
        )
        .values_list("segment_id", "contact_id")
    )
    changed_segments = []
    for key, segment in evaluated:
        to_add = [r["pk"] for r in rows if r[key] and (segment.pk, r["pk"]) not in memberships]
        to_remove = [r["pk"] for r in rows if not r[key] and (segment.pk, r["pk"]) in memberships]
        entered = membership.transition(alias, segment, membership.ENTRY, to_add, now)
        exited = membership.transition(alias, segment, membership.EXIT, to_remove, now)
        if entered or exited:
            changed_segments.append(segment)
            result.entered += len(entered)
            result.exited += len(exited)
            result.changed_contacts.update(entered, exited)
    if len(rows) < len(ids):  # deleted contacts: their rows went with them
        changed_segments = [
            *segments,
            *Segment.objects.using(alias).filter(project_id=project_id, type=Segment.Type.STATIC),
        ]
    membership.recount(alias, changed_segments)
    return result


def reevaluate_task(project_id: str, contact_ids: list[str]) -> dict[str, int]:
    """Body of ``tasks.reevaluate_segments``. The entries and exits it records are events, so
    conditions that read segments see them in the next dispatch (:mod:`.dispatch`)."""
    return reevaluate(project_id, contact_ids).as_dict()


# ---------------------------------------------------------------------------------------------
# STATIC membership


def _require_static(segment: Segment) -> None:
    if segment.type != Segment.Type.STATIC:
        raise PlunkError("Members can only be added to or removed from STATIC segments")


def normalise_emails(emails: list[Any]) -> list[str]:
    """Trimmed, lowercased, de-duplicated emails (422 for an item that is not a string)."""
    errors = FieldErrorList()
    seen: dict[str, None] = {}
    for index, email in enumerate(emails):
        if not isinstance(email, str):
            errors.add(f"emails.{index}", "Expected string", "invalid_type")
            continue
        seen[email.strip().lower()] = None
    if errors:
        raise ValidationFailed(errors)
    return list(seen)


def add_members(
    segment: Segment, emails: list[Any], *, create_missing: bool = False, subscribed: bool = True
) -> dict[str, Any]:
    """Put the contacts with these emails in a STATIC segment: ``{added, created, notFound}``.

    ``added`` counts the contacts found (members already included), ``created`` those created
    (``create_missing``, through the contact upsert), ``notFound`` the caller's strings with no
    contact. All or nothing: an invalid email to create is a 422 and nothing is written.
    """
    _require_static(segment)
    normalised = normalise_emails(emails)
    alias = db_for_write()
    project = Project(pk=segment.project_id)
    with transaction.atomic(using=alias):
        found = dict(
            Contact.objects.using(alias)
            .filter(project_id=segment.project_id, email__in=normalised)
            .values_list("email", "pk")
        )
        missing = [e for e in normalised if e not in found]
        created = 0
        if create_missing and missing:
            errors = FieldErrorList()
            for email in missing:
                check_email(errors, email, f"emails.{normalised.index(email)}")
            if errors:
                raise ValidationFailed(errors)
            for email in missing:
                found[email] = upsert_contact(project, email, None, subscribed).id
                created += 1
        ids = list(found.values())
        for chunk in membership.chunks(ids):
            membership.enter(alias, segment, chunk, timezone.now())
        membership.recount(alias, [segment])
    not_found = [e for e in emails if isinstance(e, str) and e.strip().lower() not in found]
    return {"added": len(ids) - created, "created": created, "notFound": not_found}


def remove_members(segment: Segment, emails: list[Any]) -> dict[str, int]:
    """Take the contacts with these emails out of a STATIC segment: ``{removed}`` counts the
    contacts found."""
    _require_static(segment)
    normalised = normalise_emails(emails)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        ids = list(
            Contact.objects.using(alias)
            .filter(project_id=segment.project_id, email__in=normalised)
            .values_list("pk", flat=True)
        )
        for chunk in membership.chunks(ids):
            membership.leave(alias, segment, chunk, timezone.now())
        membership.recount(alias, [segment])
    return {"removed": len(ids)}


# ---------------------------------------------------------------------------------------------
# Listing


@dataclass
class MemberPage:
    contacts: list[Contact]
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.page_size) if self.page_size else 0


def members(segment: Segment, page: int = 1, page_size: int = 20) -> MemberPage:
    """A page of the segment's members: stored rows for STATIC (newest entry first) and tracked
    segments (newest contact first), the live condition for untracked DYNAMIC ones."""
    page = max(1, int(page))
    page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    project = Project(pk=segment.project_id)
    if membership.stores_membership(segment):
        rows = membership.active_rows(segment)
        total = rows.count()
        contacts = Contact.objects.filter(project_id=segment.project_id)
        if segment.type == Segment.Type.STATIC:
            ordered = rows.select_related("contact").order_by("-entered_at", "-id")
            start = (page - 1) * page_size
            listed = [m.contact for m in ordered[start : start + page_size]]
            return MemberPage(listed, total, page, page_size)
        contacts = contacts.filter(membership.stored_members_q(segment))
    else:
        contacts = segment_query.contacts_matching(project, segment.condition)
        total = contacts.count()
    start = (page - 1) * page_size
    listed = list(contacts.order_by("-created_at", "-id")[start : start + page_size])
    return MemberPage(listed, total, page, page_size)
