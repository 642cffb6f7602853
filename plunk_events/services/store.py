"""The event store: the one module that writes events and contacts and answers event queries.

The API views, the admin, the management commands and the Python API all call these functions;
nothing else writes the event or contact tables. See ``docs/scaling.md`` for the design.

Ingest (``track``) is race-free on PostgreSQL and SQLite alike: the contact upsert is one
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` that locks the contact row and hands back its
current state, the data merge happens in Python under that lock, and the events are inserted in
the same transaction. Name and stats queries read the daily rollup plus a live tail of raw
events, so they cost O(names), stay exact, and need no counter row in the track transaction.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .. import signals
from ..conf import conf
from ..constants import CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED, is_system_event
from ..ids import uuid7
from ..models import (
    Contact,
    Event,
    EventDailyCount,
    EventDeletion,
    EventNameTotal,
    IdempotencyKey,
    Project,
)
from .errors import IdempotencyKeyReused, PlunkError
from .references import References, find_references, lock_project
from .validation import TrackInput, merge_contact_data

# ---------------------------------------------------------------------------------------------
# Contacts: the upsert shared by track, batch track and the contacts API


@dataclass
class ContactState:
    """A contact after an upsert, with what changed."""

    id: uuid.UUID
    project_id: uuid.UUID
    email: str
    subscribed: bool
    data: dict | None
    created: bool
    #: The subscription before the write when an existing contact flipped it, else None.
    previous_subscribed: bool | None = None

    @property
    def subscription_changed(self) -> bool:
        return self.previous_subscribed is not None

    def subscription_event_name(self) -> str:
        return CONTACT_SUBSCRIBED if self.subscribed else CONTACT_UNSUBSCRIBED

    def as_model(self) -> Contact:
        return Contact(
            id=self.id,
            project_id=self.project_id,
            email=self.email,
            subscribed=self.subscribed,
            data=self.data,
        )


def _db_for_write() -> str:
    return router.db_for_write(Event)


def _prep(model, connection, **values: Any) -> list[Any]:
    """Adapt values for raw SQL through the model fields, so both backends get their types."""
    return [model._meta.get_field(k).get_db_prep_save(v, connection) for k, v in values.items()]


def _upsert_contact_row(
    connection, project_id: uuid.UUID, email: str, data: dict | None, subscribed: bool | None, now
) -> ContactState:
    """Create the contact or lock the existing one, then apply Plunk's data and subscription rules.

    Must run inside a transaction: the row lock taken by ``ON CONFLICT DO UPDATE`` is what makes
    concurrent merges for one email serialise instead of losing keys.
    """
    new_id = uuid7()
    initial_data = merge_contact_data(None, data)
    initial_subscribed = True if subscribed is None else subscribed
    table = connection.ops.quote_name(Contact._meta.db_table)
    params = _prep(
        Contact,
        connection,
        id=new_id,
        project=project_id,
        email=email,
        subscribed=initial_subscribed,
        data=initial_data,
        created_at=now,
        updated_at=now,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, project_id, email, subscribed, data, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (project_id, email) DO UPDATE SET updated_at = EXCLUDED.updated_at"
            " RETURNING id, subscribed, data",
            params,
        )
        row_id, row_subscribed, row_data = cursor.fetchone()
    contact_id = row_id if isinstance(row_id, uuid.UUID) else uuid.UUID(str(row_id))
    if contact_id == new_id:
        return ContactState(
            new_id, project_id, email, initial_subscribed, initial_data, created=True
        )

    current_data = Contact._meta.get_field("data").from_db_value(row_data, None, connection)
    current_subscribed = bool(row_subscribed)
    merged = merge_contact_data(current_data, data)
    new_subscribed = current_subscribed if subscribed is None else subscribed
    if merged != current_data or new_subscribed != current_subscribed:
        Contact.objects.using(connection.alias).filter(pk=contact_id).update(
            data=merged, subscribed=new_subscribed
        )
    return ContactState(
        contact_id,
        project_id,
        email,
        new_subscribed,
        merged,
        created=False,
        previous_subscribed=current_subscribed if new_subscribed != current_subscribed else None,
    )


def _subscription_event(contact: ContactState, now) -> Event:
    """The ``contact.subscribed``/``contact.unsubscribed`` system event of a flip (spec §3.5)."""
    return Event(
        id=uuid7(),
        project_id=contact.project_id,
        contact_id=contact.id,
        name=contact.subscription_event_name(),
        data=None,
        created_at=now,
    )


def _send_signals_on_commit(alias: str, contacts: list[ContactState], events: list[Event]) -> None:
    """Queue the app's signals for after the commit, only if anyone listens."""
    if not (
        signals.event_tracked.has_listeners()
        or signals.contact_subscription_changed.has_listeners()
    ):
        return
    by_id = {c.id: c for c in contacts}

    def send() -> None:
        for contact in contacts:
            if contact.subscription_changed:
                signals.contact_subscription_changed.send(
                    sender=Contact,
                    contact=contact.as_model(),
                    subscribed=contact.subscribed,
                )
        for event in events:
            contact = by_id.get(event.contact_id)
            signals.event_tracked.send(
                sender=Event,
                event=event,
                contact=contact.as_model() if contact else None,
                created_contact=bool(contact and contact.created),
            )

    transaction.on_commit(send, using=alias)


def upsert_contact(
    project: Project, email: str, data: dict | None = None, subscribed: bool | None = None
) -> ContactState:
    """Create or update a contact by email (``POST /contacts``), with the same data and
    subscription rules as track, including the subscription-change system event."""
    alias = _db_for_write()
    now = timezone.now()
    with transaction.atomic(using=alias):
        contact = _upsert_contact_row(connections[alias], project.pk, email, data, subscribed, now)
        events = [_subscription_event(contact, now)] if contact.subscription_changed else []
        Event.objects.using(alias).bulk_create(events)
        _send_signals_on_commit(alias, [contact], [])
    return contact


def update_contact(
    project: Project,
    contact_id: uuid.UUID,
    *,
    email: str | None = None,
    data: dict | None = None,
    subscribed: bool | None = None,
) -> Contact:
    """PATCH a contact: change its email (409 if taken), merge data, flip subscription."""
    from .errors import Conflict, NotFound

    alias = _db_for_write()
    now = timezone.now()
    with transaction.atomic(using=alias):
        try:
            contact = (
                Contact.objects.using(alias).select_for_update().get(project=project, pk=contact_id)
            )
        except Contact.DoesNotExist:
            raise NotFound("Contact", contact_id) from None
        if email is not None and email != contact.email:
            if Contact.objects.using(alias).filter(project=project, email=email).exists():
                raise Conflict(
                    f'A contact with email "{email}" already exists',
                    details={"email": email},
                )
            contact.email = email
        contact.data = merge_contact_data(contact.data, data)
        previous = contact.subscribed
        if subscribed is not None:
            contact.subscribed = subscribed
        contact.updated_at = now
        contact.save(using=alias)
        state = ContactState(
            contact.id,
            project.pk,
            contact.email,
            contact.subscribed,
            contact.data,
            created=False,
            previous_subscribed=previous if previous != contact.subscribed else None,
        )
        if state.subscription_changed:
            Event.objects.using(alias).bulk_create([_subscription_event(state, now)])
        _send_signals_on_commit(alias, [state], [])
    return contact


def delete_contact(project: Project, contact_id: uuid.UUID) -> None:
    """Delete a contact and its events; the events go first through the (project, contact) index."""
    from .errors import NotFound

    alias = _db_for_write()
    with transaction.atomic(using=alias):
        contact = Contact.objects.using(alias).filter(project=project, pk=contact_id).first()
        if contact is None:
            raise NotFound("Contact", contact_id)
        Event.objects.using(alias).filter(project=project, contact=contact).delete()
        contact.delete(using=alias)


# ---------------------------------------------------------------------------------------------
# Track


@dataclass(frozen=True)
class TrackResult:
    contact_id: uuid.UUID
    event_id: uuid.UUID
    timestamp: datetime
    created_contact: bool


def find_idempotency_key(project: Project, key: str) -> None:
    """Raise 409 if ``key`` was already used by a committed request of this project."""
    claim = (
        IdempotencyKey.objects.filter(project=project, key=key, expires_at__gt=timezone.now())
        .only("key", "method", "path", "created_at", "status_code")
        .first()
    )
    if claim is not None:
        raise _key_reused(claim)


def _key_reused(claim: IdempotencyKey) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f'Idempotency-Key "{claim.key}" has already been used',
        details={
            "key": claim.key,
            "originalRequest": f"{claim.method} {claim.path}",
            "originalRequestAt": _iso(claim.created_at),
            "originalStatusCode": claim.status_code,
        },
    )


def _claim_idempotency_key(alias: str, project: Project, key: str, path: str, now) -> None:
    """Insert the claim in the caller's transaction: it commits with the event or not at all.

    A concurrent request with the same key waits on the unique index until the first commits
    (then gets 409) or rolls back (then proceeds), so a key never outlives a failed request.
    """
    connection = connections[alias]
    keys = IdempotencyKey.objects.using(alias).filter(project=project, key=key)
    keys.filter(expires_at__lte=now).delete()
    table = connection.ops.quote_name(IdempotencyKey._meta.db_table)
    params = _prep(
        IdempotencyKey,
        connection,
        project=project.pk,
        key=key,
        method="POST",
        path=path,
        status_code=200,
        created_at=now,
        expires_at=now + timedelta(hours=conf.IDEMPOTENCY_KEY_TTL_HOURS),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (project_id, "key", method, path, status_code, created_at, expires_at)'
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            ' ON CONFLICT (project_id, "key") DO NOTHING RETURNING id',
            params,
        )
        claimed = cursor.fetchone() is not None
    if not claimed:
        raise _key_reused(keys.get())


def track(
    project: Project,
    item: TrackInput,
    *,
    idempotency_key: str | None = None,
    path: str = "/v1/track",
) -> TrackResult:
    """Record one event for a contact, creating or updating the contact (spec §3).

    Contact upsert, the optional subscription-change event and the event insert commit together;
    the ``event_tracked`` signal is sent after the commit.
    """
    alias = _db_for_write()
    connection = connections[alias]
    now = timezone.now()
    with transaction.atomic(using=alias):
        if idempotency_key is not None:
            _claim_idempotency_key(alias, project, idempotency_key, path, now)
        contact = _upsert_contact_row(
            connection, project.pk, item.email, item.data, item.subscribed, now
        )
        events = [_subscription_event(contact, now)] if contact.subscription_changed else []
        event = Event(
            id=uuid7(),
            project_id=project.pk,
            contact_id=contact.id,
            name=item.event,
            data=item.data,
            created_at=now,
        )
        events.append(event)
        Event.objects.using(alias).bulk_create(events)
        _send_signals_on_commit(alias, [contact], [event])
    return TrackResult(contact.id, event.id, now, contact.created)


def track_many(project: Project, items: list[TrackInput]) -> list[TrackResult]:
    """Record several valid events in one transaction with set-based statements.

    Contacts are upserted once per distinct email (in a fixed order, so concurrent batches lock
    rows in the same order and cannot deadlock); all events go in one multi-row INSERT.
    """
    if not items:
        return []
    alias = _db_for_write()
    connection = connections[alias]
    now = timezone.now()
    by_email: dict[str, list[TrackInput]] = {}
    for item in items:
        by_email.setdefault(item.email, []).append(item)
    with transaction.atomic(using=alias):
        contacts: dict[str, ContactState] = {}
        events: list[Event] = []
        for email in sorted(by_email):
            group = by_email[email]
            # Apply the group's data and subscription in request order, as separate tracks would.
            state: ContactState | None = None
            for item in group:
                if state is None:
                    state = _upsert_contact_row(
                        connection, project.pk, email, item.data, item.subscribed, now
                    )
                else:
                    state = _apply_in_memory(state, item)
                if state.subscription_changed:
                    events.append(_subscription_event(state, now))
            contacts[email] = state
            if len(group) > 1:
                _write_back(alias, state)
        results = []
        tracked_events = []
        for item in items:
            contact = contacts[item.email]
            event = Event(
                id=uuid7(),
                project_id=project.pk,
                contact_id=contact.id,
                name=item.event,
                data=item.data,
                created_at=now,
            )
            events.append(event)
            tracked_events.append(event)
            results.append(TrackResult(contact.id, event.id, now, contact.created))
        Event.objects.using(alias).bulk_create(events, batch_size=1000)
        _send_signals_on_commit(alias, list(contacts.values()), tracked_events)
    return results


def _apply_in_memory(state: ContactState, item: TrackInput) -> ContactState:
    merged = merge_contact_data(state.data, item.data)
    subscribed = state.subscribed if item.subscribed is None else item.subscribed
    return ContactState(
        state.id,
        state.project_id,
        state.email,
        subscribed,
        merged,
        created=state.created,
        previous_subscribed=state.subscribed if subscribed != state.subscribed else None,
    )


def _write_back(alias: str, state: ContactState) -> None:
    """Persist the final data/subscription of a contact touched several times in a batch."""
    Contact.objects.using(alias).filter(pk=state.id).update(
        data=state.data, subscribed=state.subscribed
    )


# ---------------------------------------------------------------------------------------------
# Reading events


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_cursor(created_at: datetime, event_id: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    """Parse a keyset cursor; ``None`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, event_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            return None
        return created_at, uuid.UUID(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


EVENT_FIELDS = ("id", "name", "contact_id", "email_id", "data", "created_at")


@dataclass
class EventPage:
    events: list[dict[str, Any]]
    cursor: str | None
    has_more: bool


def list_events(
    project: Project,
    *,
    name: str | None = None,
    contact_id: uuid.UUID | None = None,
    limit: int = 100,
    after: tuple[datetime, uuid.UUID] | None = None,
    with_contact_email: bool = True,
) -> EventPage:
    """Newest events first, optionally of one name or one contact, keyset-paginated.

    Each query is served by one of the (project, …, created_at, id) indexes; a cursor becomes a
    range condition on that index, never an OFFSET.
    """
    qs = Event.objects.filter(project=project)
    if name:
        qs = qs.filter(name=name)
    if contact_id is not None:
        qs = qs.filter(contact_id=contact_id)
    if after is not None:
        created_at, event_id = after
        qs = qs.filter(created_at__lte=created_at).exclude(created_at=created_at, id__gte=event_id)
    fields = EVENT_FIELDS + (("contact__email",) if with_contact_email else ())
    rows = list(qs.order_by("-created_at", "-id").values(*fields)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if has_more else None
    return EventPage(rows, cursor, has_more)


# ---------------------------------------------------------------------------------------------
# Names and stats: rollup + live tail


def _floor_day(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(value: datetime) -> datetime:
    floor = _floor_day(value)
    return floor if floor == value else floor + timedelta(days=1)


def rollup(project: Project, *, now: datetime | None = None) -> int:
    """Fold every full UTC day older than ``ROLLUP_LAG_SECONDS`` into the daily counts.

    Idempotent and cheap when up to date; returns the number of (day, name) rows written.
    Runs lazily from the read paths and from ``manage.py plunk_rollup`` (for cron).
    """
    now = now or timezone.now()
    cutoff = _floor_day(now - timedelta(seconds=conf.ROLLUP_LAG_SECONDS))
    alias = _db_for_write()
    with transaction.atomic(using=alias):
        locked = (
            Project.objects.using(alias)
            .select_for_update(
                skip_locked=connections[alias].features.has_select_for_update_skip_locked
            )
            .filter(pk=project.pk)
            .only("id", "events_rolled_until")
            .first()
        )
        if locked is None:  # another worker is rolling this project up right now
            return 0
        start = locked.events_rolled_until
        events = Event.objects.using(alias).filter(project=project)
        if start is None:
            first = events.order_by("created_at").values_list("created_at", flat=True).first()
            start = _floor_day(first) if first else cutoff
        written = 0
        if start < cutoff:
            rows = list(
                events.filter(created_at__gte=start, created_at__lt=cutoff)
                .annotate(day=TruncDate("created_at", tzinfo=UTC))
                .values("day", "name")
                .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
                .order_by()
            )
            _add_to_rollup(alias, project, rows)
            written = len(rows)
        if locked.events_rolled_until != max(start, cutoff):
            Project.objects.using(alias).filter(pk=project.pk).update(
                events_rolled_until=max(start, cutoff)
            )
        project.events_rolled_until = max(start, cutoff)
    return written


def _add_to_rollup(alias: str, project: Project, rows: list[dict]) -> None:
    """Add (day, name, n, first, last) rows to the daily counts and the name totals."""
    EventDailyCount.objects.using(alias).bulk_create(
        [
            EventDailyCount(project=project, day=r["day"], name=r["name"], count=r["n"])
            for r in rows
        ],
        batch_size=1000,
    )
    per_name: dict[str, list] = {}
    for r in rows:
        agg = per_name.setdefault(r["name"], [0, r["first"], r["last"]])
        agg[0] += r["n"]
        agg[1] = min(agg[1], r["first"])
        agg[2] = max(agg[2], r["last"])
    totals = {
        t.name: t
        for t in EventNameTotal.objects.using(alias).filter(project=project, name__in=per_name)
    }
    new = []
    for name, (n, first, last) in per_name.items():
        total = totals.get(name)
        if total is None:
            new.append(
                EventNameTotal(
                    project=project, name=name, count=n, first_seen=first, last_seen=last
                )
            )
        else:
            total.count += n
            total.first_seen = min(total.first_seen, first)
            total.last_seen = max(total.last_seen, last)
    EventNameTotal.objects.using(alias).bulk_create(new, batch_size=1000)
    EventNameTotal.objects.using(alias).bulk_update(
        list(totals.values()), ["count", "first_seen", "last_seen"], batch_size=1000
    )


def _ensure_rolled_up(project: Project) -> datetime | None:
    """Roll up lazily once a new full day is due; returns the rollup watermark."""
    rolled = (
        Project.objects.filter(pk=project.pk).values_list("events_rolled_until", flat=True).first()
    )
    due = _floor_day(timezone.now() - timedelta(seconds=conf.ROLLUP_LAG_SECONDS))
    if rolled is None or rolled < due:
        rollup(project)
        rolled = (
            Project.objects.filter(pk=project.pk)
            .values_list("events_rolled_until", flat=True)
            .first()
        )
    return rolled


def _raw_counts(
    project: Project, start: datetime | None, end: datetime | None, *, end_inclusive: bool
) -> Counter:
    qs = Event.objects.filter(project=project)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lte=end) if end_inclusive else qs.filter(created_at__lt=end)
    return Counter(dict(qs.values_list("name").annotate(n=Count("id")).order_by()))


def event_counts(
    project: Project, start: datetime | None = None, end: datetime | None = None
) -> Counter:
    """Exact number of events per name with ``start <= created_at <= end`` (either open).

    Full days before the rollup watermark come from ``EventDailyCount`` (or ``EventNameTotal``
    for all time); the partial edge days and everything after the watermark are counted from
    the events themselves, so an event counts the moment its track has returned.
    """
    rolled = _ensure_rolled_up(project)
    counts: Counter = Counter()
    if rolled is None:
        counts.update(_raw_counts(project, start, end, end_inclusive=True))
        return counts
    if start is None and end is None:
        counts.update(
            dict(EventNameTotal.objects.filter(project=project).values_list("name", "count"))
        )
        counts.update(_raw_counts(project, rolled, None, end_inclusive=True))
        return +counts
    full_start = _ceil_day(start) if start is not None else None
    full_end = _floor_day(end + timedelta(microseconds=1)) if end is not None else None
    covered_end = min(full_end, rolled) if full_end is not None else rolled
    if full_start is not None and full_start >= covered_end:
        counts.update(_raw_counts(project, start, end, end_inclusive=True))
        return +counts
    daily = EventDailyCount.objects.filter(project=project, day__lt=covered_end.date())
    if full_start is not None:
        daily = daily.filter(day__gte=full_start.date())
    counts.update(dict(daily.values_list("name").annotate(n=Sum("count")).order_by()))
    if start is not None and start < full_start:
        counts.update(_raw_counts(project, start, full_start, end_inclusive=False))
    counts.update(_raw_counts(project, covered_end, end, end_inclusive=True))
    return +counts


def ranked(counts: Counter) -> list[tuple[str, int]]:
    """Count descending, then name ascending."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def event_names(project: Project) -> list[str]:
    """All event names of the project, most frequent first (``GET /events/names``)."""
    return [name for name, _ in ranked(event_counts(project))]


def event_stats(
    project: Project, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """``[{name, count}]`` for the window, count descending (``GET /events/stats``)."""
    return [{"name": name, "count": n} for name, n in ranked(event_counts(project, start, end))]


def daily_counts(
    project: Project,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    names: Iterable[str] | None = None,
) -> dict[tuple[Any, str], int]:
    """``{(day, name): count}`` for charts: rollup days plus raw counts for the rest."""
    rolled = _ensure_rolled_up(project)
    out: dict[tuple[Any, str], int] = {}
    daily = EventDailyCount.objects.filter(project=project)
    raw = Event.objects.filter(project=project)
    if names is not None:
        names = list(names)
        daily = daily.filter(name__in=names)
        raw = raw.filter(name__in=names)
    full_start = _ceil_day(start) if start is not None else None
    if rolled is not None:
        daily = daily.filter(day__lt=rolled.date())
        if full_start is not None:
            daily = daily.filter(day__gte=full_start.date())
        if end is not None:
            daily = daily.filter(day__lt=_floor_day(end).date())
        for day, name, n in daily.values_list("day", "name", "count"):
            out[(day, name)] = out.get((day, name), 0) + n
    raw_q = Q()
    if rolled is not None:
        # Raw rows: the window's part after the watermark, the partial first day, the last day.
        edge = Q(created_at__gte=rolled)
        if full_start is not None:
            edge |= Q(created_at__lt=full_start)
        if end is not None:
            edge |= Q(created_at__gte=_floor_day(end))
        raw_q &= edge
    if start is not None:
        raw_q &= Q(created_at__gte=start)
    if end is not None:
        raw_q &= Q(created_at__lte=end)
    rows = (
        raw.filter(raw_q)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values_list("day", "name")
        .annotate(n=Count("id"))
        .order_by()
    )
    for day, name, n in rows:
        out[(day, name)] = out.get((day, name), 0) + n
    return out


@dataclass
class Usage:
    name: str
    references: References
    total_count: int
    unique_contacts: int

    @property
    def is_system_event(self) -> bool:
        return is_system_event(self.name)

    @property
    def can_delete(self) -> bool:
        return not self.is_system_event and not self.references

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.references.as_usage(),
            "totalCount": self.total_count,
            "uniqueContacts": self.unique_contacts,
            "canDelete": self.can_delete,
            "isSystemEvent": self.is_system_event,
        }


def event_usage(project: Project, name: str) -> Usage:
    """References, total and exact distinct contacts of one name (``GET /events/<name>/usage``)."""
    events = Event.objects.filter(project=project, name=name)
    agg = events.aggregate(total=Count("id"), contacts=Count("contact_id", distinct=True))
    return Usage(name, find_references(project, name), agg["total"], agg["contacts"])


# ---------------------------------------------------------------------------------------------
# Delete by name


def delete_refusal(project: Project, name: str) -> PlunkError | None:
    """Why ``name`` cannot be deleted (spec §4.5), or None if it can."""
    if is_system_event(name):
        return PlunkError(f"Cannot delete reserved system event: {name}", code="BAD_REQUEST")
    refs = find_references(project, name)
    if refs:
        return PlunkError(
            f"Cannot delete event: used in {len(refs.segments)} segment(s) and "
            f"{len(refs.workflows)} workflow(s)",
            code="CONFLICT",
            status_code=400,
            details=refs.as_usage(),
        )
    return None


def start_deletion(project: Project, name: str) -> EventDeletion:
    """Check the guard and record the job in one transaction under the project lock.

    Segment and workflow writes take the same lock and refuse names with a running job, so no
    reference can slip in between the check and the delete. A running job for the same name is
    resumed rather than duplicated.
    """
    alias = _db_for_write()
    with transaction.atomic(using=alias):
        lock_project(project)
        refusal = delete_refusal(project, name)
        if refusal is not None:
            raise refusal
        job = (
            EventDeletion.objects.using(alias)
            .filter(project=project, name=name, status=EventDeletion.Status.RUNNING)
            .first()
        )
        if job is None:
            job = EventDeletion.objects.using(alias).create(
                project=project, name=name, cutoff=timezone.now()
            )
    return job


def run_deletion(job: EventDeletion, *, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete the job's events in batches of ``DELETE_BATCH_SIZE``, one short transaction each.

    Only events created up to the job's cutoff are deleted, so events tracked after the request
    survive. Each batch commits its progress, so an interrupted job resumes where it stopped.
    """
    alias = _db_for_write()
    batch = conf.DELETE_BATCH_SIZE
    while True:
        with transaction.atomic(using=alias):
            ids = (
                Event.objects.using(alias)
                .filter(project_id=job.project_id, name=job.name, created_at__lte=job.cutoff)
                .order_by("-created_at", "-id")
                .values_list("id", flat=True)[:batch]
            )
            deleted, _ = Event.objects.using(alias).filter(id__in=list(ids)).delete()
            EventDeletion.objects.using(alias).filter(pk=job.pk).update(
                deleted_count=job.deleted_count + deleted
            )
            job.deleted_count += deleted
        if on_batch:
            on_batch(deleted)
        if deleted < batch:
            break
    _finish_deletion(alias, job)
    return job.deleted_count


def _finish_deletion(alias: str, job: EventDeletion) -> None:
    """Drop the name's rollup rows, re-count any survivors already inside the rollup, close the job."""
    project = Project.objects.using(alias).get(pk=job.project_id)
    with transaction.atomic(using=alias):
        locked = lock_project(project)
        EventDailyCount.objects.using(alias).filter(project=project, name=job.name).delete()
        EventNameTotal.objects.using(alias).filter(project=project, name=job.name).delete()
        if locked.events_rolled_until is not None:
            survivors = list(
                Event.objects.using(alias)
                .filter(project=project, name=job.name, created_at__lt=locked.events_rolled_until)
                .annotate(day=TruncDate("created_at", tzinfo=UTC))
                .values("day", "name")
                .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
                .order_by()
            )
            _add_to_rollup(alias, project, survivors)
        EventDeletion.objects.using(alias).filter(pk=job.pk).update(
            status=EventDeletion.Status.DONE, finished_at=timezone.now()
        )
        job.status = EventDeletion.Status.DONE


def delete_events_by_name(project: Project, name: str) -> int:
    """Guarded delete of every event named ``name`` (``DELETE /events/<name>``); returns the count."""
    job = start_deletion(project, name)
    return run_deletion(job)


def resume_deletions(project: Project | None = None) -> list[EventDeletion]:
    """Finish every interrupted deletion job (``manage.py plunk_resume_deletions``)."""
    jobs = EventDeletion.objects.filter(status=EventDeletion.Status.RUNNING)
    if project is not None:
        jobs = jobs.filter(project=project)
    done = []
    for job in jobs:
        run_deletion(job)
        done.append(job)
    return done
