"""Email templates (Plunk's ``/templates``): the rules every surface shares, and the delete guard.

The API and the admin both write through :func:`create_template`, :func:`update_template` and
:func:`delete_template`, so a template saved anywhere satisfies the same rules: a sender and
reply address that are email addresses, a subject that fits one header line (at most 998
characters, no line break of any kind), a sender name without line breaks. Errors name the
fields as the API does (``from``, ``replyTo``, ...); :data:`API_FIELDS` maps them back to model
fields.

A template that a workflow's SEND_EMAIL step names cannot be deleted (409 naming the
workflows): Plunk's sources say nothing about it, and deleting it would make every later run
of those steps fail. The emails sent with it keep their history (``Email.template`` is
``SET_NULL``).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.db import transaction

from ..constants import EMAIL_MAX_LENGTH
from ..email_models import SUBJECT_MAX_LENGTH, Template
from ..models import Project, Workflow, WorkflowStep
from . import references
from .db import db_for_write, project_object_or_404
from .email_render import LINE_SEPARATORS
from .errors import Conflict, FieldErrorList, ValidationFailed
from .validation import MISSING, enum_message, type_error

NAME_MAX_LENGTH = 100
DESCRIPTION_MAX_LENGTH = 500
FROM_NAME_MAX_LENGTH = 100

#: Model field → the API's (and the error items') field name.
API_FIELDS = {
    "name": "name",
    "description": "description",
    "subject": "subject",
    "body": "body",
    "body_format": "bodyFormat",
    "type": "type",
    "from_email": "from",
    "from_name": "fromName",
    "reply_to": "replyTo",
}
TEMPLATE_FIELDS = tuple(API_FIELDS)
#: Fields a new template must have (Plunk: 400 "From address is required" without ``from``).
REQUIRED_FIELDS = ("name", "subject", "body", "from_email")

_email_validator = EmailValidator()


# ---------------------------------------------------------------------------------------------
# Rules


def _too_long(errors: FieldErrorList, field: str, value: str, limit: int) -> bool:
    if len(value) > limit:
        errors.add(field, f"String must contain at most {limit} character(s)", "too_big")
        return True
    return False


def _text(errors, field, value, limit, *, required: bool, one_line: bool = False):
    """A string field: trimmed unless it is the body; blank is an error when required, else
    ``None``; at most ``limit`` characters; no CR/LF when it becomes a header."""
    api = API_FIELDS[field]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        type_error(errors, api, "string", value)
        return None
    if field != "body":
        value = value.strip()
    if not value:
        if required:
            errors.add(api, "String must contain at least 1 character(s)", "too_small")
        return None
    if limit and _too_long(errors, api, value, limit):
        return None
    if one_line and any(separator in value for separator in LINE_SEPARATORS):
        errors.add(api, "Must not contain line breaks (CR or LF)", "invalid_string")
        return None
    return value


def _address(errors: FieldErrorList, field: str, value: Any, *, required: bool) -> str | None:
    """A bare email address (``hello@example.com``), trimmed, its case kept."""
    value = _text(errors, field, value, EMAIL_MAX_LENGTH, required=required)
    if value is None:
        return None
    try:
        _email_validator(value)
    except DjangoValidationError:
        errors.add(API_FIELDS[field], "Invalid email", "invalid_string")
        return None
    return value


def _choice(errors: FieldErrorList, field: str, value: Any, choices) -> str | None:
    allowed = [choice for choice, _ in choices]
    if value not in allowed:
        errors.add(API_FIELDS[field], enum_message(allowed, value), "invalid_enum_value")
        return None
    return value


def clean_template_values(values: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The values normalised (trimmed; blank optional fields become ``None``), or
    :class:`ValidationFailed` naming every bad field by its API name.

    ``creating``: the fields of :data:`REQUIRED_FIELDS` must be present; on an update only the
    given fields are checked, and none of those may be emptied.
    """
    unknown = set(values) - set(TEMPLATE_FIELDS)
    if unknown:
        raise TypeError(f"unknown template fields: {sorted(unknown)}")
    errors = FieldErrorList()
    if creating:
        for field in REQUIRED_FIELDS:
            if field not in values:
                type_error(errors, API_FIELDS[field], "string", MISSING)
    checks = {
        "name": lambda v: _text(errors, "name", v, NAME_MAX_LENGTH, required=True),
        "description": lambda v: _text(
            errors, "description", v, DESCRIPTION_MAX_LENGTH, required=False
        ),
        "subject": lambda v: _text(
            errors, "subject", v, SUBJECT_MAX_LENGTH, required=True, one_line=True
        ),
        "body": lambda v: _text(errors, "body", v, 0, required=True),
        "body_format": lambda v: _choice(errors, "body_format", v, Template.BodyFormat.choices),
        "type": lambda v: _choice(errors, "type", v, Template.Type.choices),
        "from_email": lambda v: _address(errors, "from_email", v, required=True),
        "from_name": lambda v: _text(
            errors, "from_name", v, FROM_NAME_MAX_LENGTH, required=False, one_line=True
        ),
        "reply_to": lambda v: _address(errors, "reply_to", v, required=False),
    }
    # In a fixed order, so the errors do not depend on the order of the caller's keys.
    cleaned = {field: checks[field](values[field]) for field in TEMPLATE_FIELDS if field in values}
    if errors:
        raise ValidationFailed(errors)
    return cleaned


# ---------------------------------------------------------------------------------------------
# Reads and writes


def get_template(project: Project, template_id: Any, *, using: str | None = None) -> Template:
    """The project's template, or 404 (also for ids that are not UUIDs)."""
    return project_object_or_404(Template.objects.using(using), project, template_id, "Template")


def create_template(project: Project, **values: Any) -> Template:
    """A new template; ``type`` defaults to MARKETING and ``body_format`` to HTML."""
    cleaned = clean_template_values(values, creating=True)
    cleaned.setdefault("type", Template.Type.MARKETING)
    cleaned.setdefault("body_format", Template.BodyFormat.HTML)
    template = Template(project=project, **cleaned)
    template.save(using=db_for_write())
    return template


def update_template(project: Project, template_id: Any, **changes: Any) -> Template:
    """Apply ``changes`` (any of :data:`TEMPLATE_FIELDS`); 404 for another project's id."""
    cleaned = clean_template_values(changes, creating=False)
    alias = db_for_write()
    with transaction.atomic(using=alias):
        template = get_template(project, template_id, using=alias)
        for field, value in cleaned.items():
            setattr(template, field, value)
        template.save(using=alias)
    return template


class TemplateInUse(Conflict):
    """409: SEND_EMAIL steps of these workflows name the template."""

    def __init__(self, template: Template, workflows: list[Workflow]) -> None:
        names = ", ".join(f'"{w.name}"' for w in workflows)
        super().__init__(
            f'Template "{template.name}" is used by the SEND_EMAIL steps of {len(workflows)} '
            f"workflow(s) ({names}) and cannot be deleted; remove it from those steps first",
            details={"usedInWorkflows": [{"id": str(w.id), "name": w.name} for w in workflows]},
        )
        self.workflows = workflows


def workflows_using(
    project: Project, template_id: uuid.UUID, *, using: str | None = None
) -> list[Workflow]:
    """Workflows (enabled or not, by creation) with a SEND_EMAIL step whose ``templateId`` is
    this template's, however the UUID is spelled (case, hyphens)."""
    steps = WorkflowStep.objects.using(using).filter(
        project=project, type=WorkflowStep.Type.SEND_EMAIL
    )
    workflow_ids = set()
    for workflow_id, config in steps.values_list("workflow_id", "config"):
        named = config.get("templateId") if isinstance(config, dict) else None
        try:
            if isinstance(named, str) and uuid.UUID(named) == template_id:
                workflow_ids.add(workflow_id)
        except ValueError:
            continue
    if not workflow_ids:
        return []
    return list(
        Workflow.objects.using(using)
        .filter(project=project, pk__in=workflow_ids)
        .only("id", "name", "created_at")
        .order_by("created_at", "id")
    )


def delete_template(project: Project, template_id: Any) -> None:
    """Delete the template unless a workflow's SEND_EMAIL step names it (:class:`TemplateInUse`).

    The template's row is locked (``FOR UPDATE``) for the check and the delete, after the
    project lock that workflow writes naming event names take.
    """
    alias = db_for_write()
    with transaction.atomic(using=alias):
        references.lock_project(project)
        rows = Template.objects.using(alias).select_for_update()
        template = project_object_or_404(rows, project, template_id, "Template")
        used_by = workflows_using(project, template.pk, using=alias)
        if used_by:
            raise TemplateInUse(template, used_by)
        template.delete(using=alias)
