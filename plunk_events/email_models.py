"""Tables of email: templates and the messages sent (re-exported by :mod:`.models`).

A :class:`Template` is Plunk's ``/templates`` resource. An :class:`Email` is one message to one
contact, written ``PENDING`` when ``POST /v1/send`` or a SEND_EMAIL step asks for it and handed
to Django's ``EMAIL_BACKEND`` by a task. Its status only moves forward (:data:`STATUS_ORDER`);
the provider's tracking (django-anymail) moves it and stamps the times and counters.

As in :mod:`.models`, every index and unique constraint starts with ``project``, except the one
on ``message_id``: a provider's webhook names only its message id, not a project.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .constants import EMAIL_MAX_LENGTH
from .ids import uuid7

#: RFC 5322's line limit, Plunk's subject limit.
SUBJECT_MAX_LENGTH = 998


class Template(models.Model):
    """A reusable message: subject and body with ``{{variable}}`` placeholders."""

    class Type(models.TextChoices):
        #: Sent to subscribed contacts only; carries List-Unsubscribe headers.
        MARKETING = "MARKETING"
        #: Sent whatever the contact's subscription (receipts, password resets).
        TRANSACTIONAL = "TRANSACTIONAL"
        #: Plunk's code-managed templates; sent like TRANSACTIONAL here.
        HEADLESS = "HEADLESS"

    class BodyFormat(models.TextChoices):
        HTML = "HTML"
        #: Converted to HTML at send time (placeholders are substituted, escaped, after).
        MARKDOWN = "MARKDOWN"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(
        "plunk_events.Project", on_delete=models.CASCADE, related_name="templates", db_index=False
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001 (Plunk: nullable)
    subject = models.CharField(max_length=SUBJECT_MAX_LENGTH)
    body = models.TextField()
    body_format = models.CharField(
        max_length=10, choices=BodyFormat.choices, default=BodyFormat.HTML
    )
    type = models.CharField(max_length=15, choices=Type.choices, default=Type.MARKETING)
    from_email = models.CharField(max_length=EMAIL_MAX_LENGTH, blank=True, default="")
    from_name = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 (Plunk: nullable)
    reply_to = models.CharField(max_length=EMAIL_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "-created_at"], name="plunk_template_p_created"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_marketing(self) -> bool:
        return self.type == self.Type.MARKETING


class Email(models.Model):
    """One message to one contact and what became of it."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        SENT = "SENT"
        DELIVERED = "DELIVERED"
        OPENED = "OPENED"
        CLICKED = "CLICKED"
        BOUNCED = "BOUNCED"
        COMPLAINED = "COMPLAINED"
        FAILED = "FAILED"

    class Source(models.TextChoices):
        TRANSACTIONAL = "TRANSACTIONAL"
        WORKFLOW = "WORKFLOW"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    project = models.ForeignKey(
        "plunk_events.Project", on_delete=models.CASCADE, related_name="emails", db_index=False
    )
    contact = models.ForeignKey(
        "plunk_events.Contact", on_delete=models.CASCADE, related_name="emails", db_index=False
    )
    template = models.ForeignKey(
        Template,
        on_delete=models.SET_NULL,
        related_name="emails",
        null=True,
        blank=True,
        db_index=False,
    )
    #: The SEND_EMAIL step run that asked for it: at most one email per step run.
    step_execution = models.ForeignKey(
        "plunk_events.WorkflowStepExecution",
        on_delete=models.SET_NULL,
        related_name="emails",
        null=True,
        blank=True,
        db_index=False,
    )
    source = models.CharField(max_length=15, choices=Source.choices)
    #: Marketing mail carries List-Unsubscribe headers; transactional mail does not.
    marketing = models.BooleanField(default=False)
    #: The address the message goes to: the contact's, or a SEND_EMAIL step's custom recipient.
    to_email = models.CharField(max_length=EMAIL_MAX_LENGTH)
    to_name = models.CharField(max_length=100, blank=True, default="")
    from_email = models.CharField(max_length=EMAIL_MAX_LENGTH)
    from_name = models.CharField(max_length=100, blank=True, default="")
    reply_to = models.CharField(max_length=EMAIL_MAX_LENGTH, blank=True, default="")
    #: Rendered: placeholders substituted at the request, so later data changes do not alter it.
    subject = models.CharField(max_length=SUBJECT_MAX_LENGTH)
    body = models.TextField()
    #: Extra headers of ``/v1/send`` (``{name: value}``).
    headers = models.JSONField(default=dict, blank=True)
    #: ``/v1/send`` attachments as sent (``[{filename, content (base64), contentType, ...}]``).
    attachments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    #: Why a FAILED email was not sent.
    error = models.TextField(blank=True, default="")
    #: The provider's id (django-anymail's ``message_id``), else the Message-ID header we set.
    message_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (unique when set)
    opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "step_execution"],
                condition=Q(step_execution__isnull=False),
                name="plunk_email_one_per_step_run",
            ),
        ]
        indexes = [
            # the admin's and a contact's email lists, newest first
            models.Index(fields=["project", "-created_at", "-id"], name="plunk_email_p_created"),
            models.Index(
                fields=["project", "contact", "-created_at"], name="plunk_email_p_contact"
            ),
            # tracking webhooks look the email up by the provider's id alone
            models.Index(fields=["message_id"], name="plunk_email_message_id"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email}"


#: Forward order of :class:`Email.Status`: a tracking event never moves an email backwards
#: (Plunk's ``nextStatus``). FAILED stands apart: only a send that never happened is FAILED.
STATUS_ORDER = {
    status: rank
    for rank, status in enumerate(
        ("PENDING", "SENT", "DELIVERED", "OPENED", "CLICKED", "BOUNCED", "COMPLAINED")
    )
}
