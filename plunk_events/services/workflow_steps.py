"""What each workflow step does (plunk-engine.md §2.2, §2.6, §2.7); the runtime
(:mod:`.workflow_runtime`) decides when, and records the result.

A step returns a :class:`StepResult` or raises :class:`StepFailed` (the step and its run
FAIL). Steps run inside the runtime's claim transaction, except WEBHOOK's delivery, which the
runtime makes outside any transaction (:func:`deliver_webhook`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from ..models import Contact, Email, Project, Template, WorkflowStep
from . import contacts as contact_service
from . import email_send, step_config, webhooks, workflow_values
from .errors import PlunkError, ValidationFailed

#: Marks a SEND_EMAIL to a CUSTOM recipient (not the contact), as Plunk does.
RECIPIENT_OVERRIDE_HEADER = "X-Plunk-Recipient-Override"
WEBHOOK_TIMEOUT_SECONDS = 10.0


class StepFailed(Exception):
    """The step cannot complete: its run fails with this message."""


@dataclass
class StepResult:
    output: dict = field(default_factory=dict)
    #: DELAY: when the next step is due.
    resume_at: datetime | None = None
    #: WAIT_FOR_EVENT: the step waits for this event (until ``wait_until``, if set).
    waiting: bool = False
    wait_event_name: str = ""
    wait_until: datetime | None = None
    #: EXIT: the run ends here, with this reason.
    exit_reason: str | None = None


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def contact_fields(contact: Contact) -> dict[str, Any]:
    return {
        "id": str(contact.pk),
        "email": contact.email,
        "subscribed": contact.subscribed,
        "data": contact.data or {},
    }


def run(alias: str, execution, step: WorkflowStep, row) -> StepResult:
    """Run one step of ``execution`` (not WEBHOOK: see :func:`deliver_webhook`)."""
    config = step.config if isinstance(step.config, dict) else {}
    if step.type == WorkflowStep.Type.SEND_EMAIL:
        return _send_email(alias, execution, config, row)
    handler = _HANDLERS.get(step.type)
    if handler is None:
        raise StepFailed(f"Step type {step.type} cannot run here")
    return handler(alias, execution, config)


def _trigger(alias, execution, config) -> StepResult:
    event_name = config.get("eventName") if execution.source_event_id else None
    return StepResult(
        {
            "triggered": True,
            "eventName": event_name or "manual",
            "timestamp": _iso(timezone.now()),
        }
    )


def _delay(alias, execution, config) -> StepResult:
    amount, unit = config.get("amount"), config.get("unit")
    if (
        not isinstance(amount, int | float)
        or isinstance(amount, bool)
        or unit not in step_config.DELAY_UNITS
    ):
        raise StepFailed("DELAY needs a positive amount and a unit (minutes, hours, days)")
    resume_at = timezone.now() + timedelta(seconds=amount * step_config.DELAY_UNITS[unit])
    return StepResult(
        {"delayAmount": amount, "delayUnit": unit, "resumeAt": _iso(resume_at)},
        resume_at=resume_at,
    )


def _wait_for_event(alias, execution, config) -> StepResult:
    name = config.get("eventName")
    if not isinstance(name, str) or not name:
        raise StepFailed("WAIT_FOR_EVENT needs an eventName")
    timeout = config.get("timeout")
    until = timezone.now() + timedelta(seconds=timeout) if timeout else None
    return StepResult(
        {
            "eventName": name,
            "timeout": timeout or None,
            "waitingUntil": _iso(until) if until else "indefinite",
        },
        waiting=True,
        wait_event_name=name,
        wait_until=until,
    )


def _condition(alias, execution, config) -> StepResult:
    contact = Contact.objects.using(alias).get(pk=execution.contact_id)
    scope = workflow_values.field_scope(contact_fields(contact), execution.context)
    try:
        return StepResult(workflow_values.evaluate_condition(config, scope))
    except workflow_values.ConditionError as exc:
        raise StepFailed(str(exc)) from None


def _update_contact(alias, execution, config) -> StepResult:
    """Through the contacts API's service: a subscription change records its event."""
    updates = config.get("updates")
    action = config.get("subscriptionAction") or "none"
    if updates is not None and not isinstance(updates, dict):
        raise StepFailed("UPDATE_CONTACT updates must be an object")
    subscribed = {"subscribe": True, "unsubscribe": False}.get(action)
    try:
        contact = contact_service.update_contact(
            Project(pk=execution.project_id),
            execution.contact_id,
            data=updates or None,
            subscribed=subscribed,
        )
    except (PlunkError, ValidationFailed) as exc:
        raise StepFailed(str(exc)) from None
    return StepResult(
        {
            "updated": sorted(updates or {}),
            "subscriptionAction": action,
            "subscribed": contact.subscribed,
        }
    )


def _exit(alias, execution, config) -> StepResult:
    reason = config.get("reason") or "exit_step"
    return StepResult({"reason": reason}, exit_reason=str(reason))


def _send_email(alias, execution, config, row) -> StepResult:
    """Queue the template's email (plunk-engine.md §2.2): sent by a task once the step commits.

    One email per step run (a unique constraint): a run that repeats the step finds it. Marketing
    mail to an unsubscribed contact is recorded FAILED and the step still succeeds; a CUSTOM
    recipient gets the mail whatever the contact's subscription, marked by the header
    ``X-Plunk-Recipient-Override``.
    """
    existing = Email.objects.using(alias).filter(
        project_id=execution.project_id, step_execution=row
    )
    email = existing.first()
    if email is None:
        template = _template(alias, execution.project_id, config.get("templateId"))
        recipient = config.get("recipient") if isinstance(config.get("recipient"), dict) else {}
        custom = recipient.get("type") == step_config.RECIPIENT_CUSTOM
        contact = Contact.objects.using(alias).get(pk=execution.contact_id)
        to_email = str(recipient.get("customEmail") or "").strip() if custom else contact.email
        if not to_email:
            raise StepFailed("SEND_EMAIL with a CUSTOM recipient needs recipient.customEmail")
        headers = {RECIPIENT_OVERRIDE_HEADER: to_email} if custom else {}
        transactional = template.type == Template.Type.TRANSACTIONAL
        email = email_send.queue_email(
            Project(pk=execution.project_id),
            contact,
            email_send.message_from_template(template, headers=headers),
            source=Email.Source.TRANSACTIONAL if transactional else Email.Source.WORKFLOW,
            context=execution.context,
            to_email=to_email,
            step_execution=row,
            using=alias,
        )
    overridden = RECIPIENT_OVERRIDE_HEADER in (email.headers or {})
    return StepResult(
        {
            "emailId": str(email.pk),
            "sentAt": _iso(email.created_at) if email.status != Email.Status.FAILED else None,
            "recipientType": (
                step_config.RECIPIENT_CUSTOM if overridden else step_config.RECIPIENT_CONTACT
            ),
            "recipientEmail": email.to_email,
            "status": email.status,
        }
    )


def _template(alias: str, project_id, template_id) -> Template:
    if not template_id:
        raise StepFailed("SEND_EMAIL needs a templateId")
    try:
        template = (
            Template.objects.using(alias).filter(project_id=project_id, pk=template_id).first()
        )
    except (ValueError, ValidationError):
        template = None
    if template is None:
        raise StepFailed(f"Template not found: {template_id}")
    return template


_HANDLERS = {
    WorkflowStep.Type.TRIGGER: _trigger,
    WorkflowStep.Type.DELAY: _delay,
    WorkflowStep.Type.WAIT_FOR_EVENT: _wait_for_event,
    WorkflowStep.Type.CONDITION: _condition,
    WorkflowStep.Type.UPDATE_CONTACT: _update_contact,
    WorkflowStep.Type.EXIT: _exit,
}


def webhook_payload(execution, step: WorkflowStep, contact: Contact) -> dict[str, Any]:
    """Plunk's default WEBHOOK body."""
    return {
        "contact": {"email": contact.email, "subscribed": contact.subscribed, "data": contact.data},
        "workflow": {"id": str(execution.workflow_id), "name": execution.workflow.name},
        "execution": {"id": str(execution.pk), "startedAt": _iso(execution.started_at)},
        "event": execution.context,
    }


def deliver_webhook(execution, step: WorkflowStep, contact: Contact, row) -> dict[str, Any]:
    """Render and send the WEBHOOK request; its output (a non-2xx answer is an output too)."""
    config = step.config if isinstance(step.config, dict) else {}
    variables = workflow_values.step_variables(contact_fields(contact), execution.context)
    url = workflow_values.render(str(config.get("url") or ""), variables)
    method = str(config.get("method") or "POST").upper()
    headers = {
        str(k): workflow_values.render(str(v), variables)
        for k, v in (config.get("headers") or {}).items()
    }
    body = config.get("body")
    if body is None:
        body = webhook_payload(execution, step, contact)
    else:
        body = workflow_values.render_value(body, variables)
    try:
        result = webhooks.deliver(
            url,
            method=method,
            headers=headers,
            body=body,
            idempotency_key=str(row.pk),
            timeout=WEBHOOK_TIMEOUT_SECONDS,
        )
    except webhooks.WebhookError as exc:
        raise StepFailed(str(exc)) from None
    return {
        "url": url,
        "method": method,
        "statusCode": result.status_code,
        "success": result.success,
        "response": result.response(),
    }
