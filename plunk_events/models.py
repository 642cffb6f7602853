"""Tables of plunk_events.

Every tenant table carries ``project`` and every index and unique constraint starts with it, so
queries are served per project and the schema can later be distributed by project (Citus).
Foreign keys therefore set ``db_index=False``: the composite indexes cover them.
All writes to events and contacts go through the service modules (:mod:`plunk_events.services`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime

from django.db import models
from django.utils import timezone

from .constants import (
    EMAIL_MAX_LENGTH,
    EVENT_NAME_MAX_LENGTH,
    PUBLIC_KEY_PREFIX,
    SECRET_KEY_DISPLAY_CHARS,
    SECRET_KEY_PREFIX,
)
from .ids import uuid7


def new_public_key() -> str:
    return PUBLIC_KEY_PREFIX + secrets.token_hex(24)


def new_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_hex(24)


def hash_key(key: str) -> str:
    """Hex SHA-256 of an API key: what is stored of a secret key, and what it is looked up by.

    A plain digest is enough (no salt, no slow hash): keys are 192 random bits, not passwords.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def secret_key_display(key: str) -> str:
    """The non-secret start of a secret key kept for display, e.g. ``sk_3f9a``."""
    return key[: len(SECRET_KEY_PREFIX) + SECRET_KEY_DISPLAY_CHARS]


class Project(models.Model):
    """A tenant: owns the API key pair and every contact, event, segment and workflow.

    The public key is stored as is (it ships to browsers). The secret key is stored only as its
    SHA-256 digest plus a short prefix for display. Its plaintext, ``project.secret_key``, exists
    only on the instance that made it: the one saved new, or returned by ``create_project()`` or
    ``regenerate_keys()`` (:mod:`plunk_events.services.projects`).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    public_key = models.CharField(max_length=64, unique=True, default=new_public_key)
    #: :func:`hash_key` of the secret key.
    secret_key_hash = models.CharField(max_length=64, unique=True, editable=False)
    #: :func:`secret_key_display` of the secret key: recognisable, useless to an attacker.
    secret_key_prefix = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    #: Events created before this instant are counted in EventNameTotal / EventDailyCount.
    events_rolled_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.secret_key_hash:  # a new project gets its secret key here
            self.secret_key = new_secret_key()
        super().save(*args, **kwargs)

    @property
    def secret_key(self) -> str:
        """The plaintext secret key, only on the instance that made it (it is never stored)."""
        try:
            return self._secret_key
        except AttributeError:
            raise AttributeError(
                "The secret key is stored hashed: its plaintext exists only on the Project "
                "returned by create_project() or regenerate_keys()."
            ) from None

    @secret_key.setter
    def secret_key(self, key: str) -> None:
        """Set a new secret key: stores its digest and display prefix, keeps the plaintext here."""
        self._secret_key = key
        self.secret_key_hash = hash_key(key)
        self.secret_key_prefix = secret_key_display(key)


class Contact(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="contacts", db_index=False
    )
    email = models.CharField(max_length=EMAIL_MAX_LENGTH)
    subscribed = models.BooleanField(default=True)
    data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "email"], name="plunk_contact_project_email")
        ]
        indexes = [
            models.Index(fields=["project", "-created_at", "-id"], name="plunk_contact_p_created"),
            models.Index(fields=["project", "subscribed"], name="plunk_contact_p_subscribed"),
        ]

    def __str__(self) -> str:
        return self.email


class Event(models.Model):
    """One occurrence of a named event; a fact, never edited."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="events",
        null=True,
        blank=True,
        db_index=False,
    )
    name = models.CharField(max_length=EVENT_NAME_MAX_LENGTH)
    data = models.JSONField(null=True, blank=True)
    email_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # GET /events
            models.Index(fields=["project", "-created_at", "-id"], name="plunk_ev_p_created"),
            # GET /events?eventName=, usage, delete by name, stats edges
            models.Index(
                fields=["project", "name", "-created_at", "-id"], name="plunk_ev_p_name_created"
            ),
            # GET /events/contact/<id>, contact timeline in the admin
            models.Index(
                fields=["project", "contact", "-created_at", "-id"],
                name="plunk_ev_p_contact_created",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class EventStatistics(Event):
    """No table: the admin index's entry to the per-name statistics pages of the Event admin."""

    class Meta:
        proxy = True
        verbose_name = "event statistics"
        verbose_name_plural = "event statistics"


class EventNameTotal(models.Model):
    """Catalogue of event names with all-time counts up to ``Project.events_rolled_until``.

    Maintained by the rollup only, never inside the track transaction.
    """

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    name = models.CharField(max_length=EVENT_NAME_MAX_LENGTH)
    count = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="plunk_name_total_unique")
        ]

    def __str__(self) -> str:
        return self.name


class EventDailyCount(models.Model):
    """Events per (project, UTC day, name) for days before ``Project.events_rolled_until``."""

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    day = models.DateField()
    name = models.CharField(max_length=EVENT_NAME_MAX_LENGTH)
    count = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "day", "name"], name="plunk_daily_unique")
        ]
        indexes = [models.Index(fields=["project", "name", "day"], name="plunk_daily_p_name_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.name}: {self.count}"


class EventDeletion(models.Model):
    """A delete-by-name job: events of ``name`` created up to ``cutoff`` are removed in batches."""

    class Status(models.TextChoices):
        RUNNING = "RUNNING"
        DONE = "DONE"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    name = models.CharField(max_length=EVENT_NAME_MAX_LENGTH)
    cutoff = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    deleted_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: The lease of the worker running the job: a random token per run, renewed (with
    #: ``heartbeat_at``) by every batch commit. A RUNNING job whose lease has run out, or was
    #: released by a worker that failed, is abandoned and may be taken over by anyone.
    owner = models.CharField(max_length=32, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one running job per name; a second DELETE resumes it if abandoned.
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(status="RUNNING"),
                name="plunk_deletion_one_running",
            )
        ]
        indexes = [models.Index(fields=["project", "status"], name="plunk_deletion_p_status")]

    def __str__(self) -> str:
        return f"delete {self.name} ({self.status})"

    def worker_alive(self, now: datetime | None = None) -> bool:
        """Whether a worker holds the job's lease (a RUNNING job that is not abandoned)."""
        return (
            self.status == self.Status.RUNNING
            and self.lease_expires_at is not None
            and self.lease_expires_at > (now or timezone.now())
        )


class IdempotencyKey(models.Model):
    """A claimed ``Idempotency-Key`` of a successful track; committed with its event."""

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=255)
    status_code = models.PositiveSmallIntegerField(null=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    #: With ``IDEMPOTENCY_REPLAY``: SHA-256 (hex) of the raw request body, which with the method
    #: and path tells a retry from a different request, and the exact bytes and content type of
    #: the first 2xx response, replayed to a retry. Empty when replay was off or the body too big.
    request_sha256 = models.CharField(max_length=64, blank=True, default="")
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="plunk_idempotency_unique")
        ]

    def __str__(self) -> str:
        return self.key


def segment_slug(name: str) -> str:
    """Plunk's slug of a segment name, used in ``segment.<slug>.entry`` and ``.exit``."""
    slug = re.sub(r"[^A-Za-z0-9_\s-]", "", name.lower().strip())
    slug = re.sub(r"\s+", "-", slug)
    slug = re.sub(r"-+", "-", slug)
    return slug.strip("-")


class Segment(models.Model):
    class Type(models.TextChoices):
        DYNAMIC = "DYNAMIC"
        STATIC = "STATIC"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="segments", db_index=False
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001 (Plunk: nullable)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.DYNAMIC)
    #: Plunk's filter grammar (AND/OR groups of filters); validated by services.conditions.
    condition = models.JSONField(null=True, blank=True)
    track_membership = models.BooleanField(default=False)
    member_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="plunk_segment_p_created")]

    def __str__(self) -> str:
        return self.name

    @property
    def slug(self) -> str:
        return segment_slug(self.name)


class Workflow(models.Model):
    class TriggerType(models.TextChoices):
        EVENT = "EVENT"
        MANUAL = "MANUAL"
        SCHEDULE = "SCHEDULE"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="workflows", db_index=False
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001 (Plunk: nullable)
    enabled = models.BooleanField(default=False)
    trigger_type = models.CharField(
        max_length=10, choices=TriggerType.choices, default=TriggerType.EVENT
    )
    trigger_config = models.JSONField(default=dict, blank=True)
    allow_reentry = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="plunk_workflow_p_created")]

    def __str__(self) -> str:
        return self.name

    @property
    def trigger_event_name(self) -> str | None:
        if self.trigger_type != self.TriggerType.EVENT or not isinstance(self.trigger_config, dict):
            return None
        return self.trigger_config.get("eventName")


def default_position() -> dict[str, int]:
    """Where the builder draws a step that was given no position."""
    return {"x": 0, "y": 0}


class WorkflowStep(models.Model):
    """A node of a workflow's graph; :class:`WorkflowTransition` rows are its edges.

    ``order`` is the creation order: it keeps listings stable and tells which leaf a new step
    is connected to (``autoConnect``); the graph itself lives in the transitions.
    """

    class Type(models.TextChoices):
        TRIGGER = "TRIGGER"
        SEND_EMAIL = "SEND_EMAIL"
        DELAY = "DELAY"
        WAIT_FOR_EVENT = "WAIT_FOR_EVENT"
        CONDITION = "CONDITION"
        EXIT = "EXIT"
        WEBHOOK = "WEBHOOK"
        UPDATE_CONTACT = "UPDATE_CONTACT"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    type = models.CharField(max_length=20, choices=Type.choices)
    name = models.CharField(max_length=100)
    config = models.JSONField(default=dict, blank=True)
    position = models.JSONField(default=default_position, blank=True)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order"]
        indexes = [
            models.Index(fields=["project", "workflow", "order"], name="plunk_step_p_workflow"),
            models.Index(fields=["project", "type"], name="plunk_step_p_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type}: {self.name}"


class PeriodicSchedule(models.Model):
    """When each periodic job is due next, and the tick chain's token (:mod:`plunk_events.tasks`).

    Not a tenant table: one row per job (``job:<name>``) plus the row ``tick``. Rows change
    only by compare-and-swap updates, so concurrent ticks and ``plunk_tick`` runs agree on who
    runs a job and on which pending tick is the chain's.
    """

    name = models.CharField(primary_key=True, max_length=64)
    next_run_at = models.DateTimeField()
    #: The tick row: the token the chain's pending tick carries; a tick with any other token
    #: is stale and does nothing.
    token = models.CharField(max_length=32, blank=True, default="")
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: next {self.next_run_at:%Y-%m-%d %H:%M:%S}"


class EventCursor(models.Model):
    """How far a consumer of new events has read a project's events (:mod:`.services.dispatch`).

    Events are read in ``(created_at, id)`` order after the cursor; a consumer moves its cursor
    on by compare-and-swap, so concurrent dispatches never move it backwards.
    """

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    #: Who reads: ``segments`` (re-evaluation), ``workflows`` (enrollment).
    consumer = models.CharField(max_length=32)
    created_at = models.DateTimeField()
    event_id = models.UUIDField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "consumer"], name="plunk_cursor_unique")
        ]

    def __str__(self) -> str:
        return f"{self.consumer} of {self.project_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class SegmentMembership(models.Model):
    """A contact's membership of a STATIC or tracked DYNAMIC segment (:mod:`.services.segments`).

    One row per (segment, contact), ever: an exit sets ``exited_at`` (soft), a re-entry clears
    it and moves ``entered_at``. Rows change only by conditional statements (insert on no
    conflict or reactivate where exited; exit where not exited) whose returned rows decide who
    records the entry or exit event, so concurrent recomputes record each one exactly once.
    """

    id = models.BigAutoField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, db_index=False)
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="segment_memberships", db_index=False
    )
    entered_at = models.DateTimeField(default=timezone.now)
    #: None while the contact is a member.
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "segment", "contact"], name="plunk_membership_unique"
            )
        ]
        indexes = [
            # a contact's segments (re-evaluation, contact delete)
            models.Index(fields=["project", "contact"], name="plunk_membership_p_contact"),
            # GET /segments/<id>/contacts of a STATIC segment: newest entries first
            models.Index(
                fields=["project", "segment", "-entered_at"], name="plunk_membership_p_entered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.segment_id}"


# The workflow runtime's and email's models live in their own modules (this one would pass 600
# lines).
from .email_models import Email, Template  # noqa: E402, F401 (re-exported)
from .workflow_models import (  # noqa: E402, F401 (re-exported)
    WorkflowExecution,
    WorkflowStepExecution,
    WorkflowTransition,
)
