"""Segment and workflow forms: the API's validation rules, reported as field errors.

Validation is :func:`conditions.validate_condition` and the event name rules, the functions
behind the segment and workflow endpoints. The reference guard
(:func:`references.guard_new_references`) runs in ``clean()``, which the admin calls inside the
transaction of the save, so the project lock it takes is held until the write commits.
"""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from ..models import Contact, Segment, Workflow
from ..services import automation, references
from ..services.errors import Conflict, FieldErrorList, ValidationFailed
from ..services.validation import check_email, check_event_name


def _guard(form: forms.BaseForm | forms.BaseFormSet, project, names, field: str | None) -> None:
    """The guard of the API's writes; a deletion whose worker is gone is finished first (inside
    the admin's transaction) and the save goes ahead, as it would through the API."""
    try:
        try:
            references.guard_new_references(project, names)
        except references.DeletionRunning as refused:
            if not automation.finish_abandoned_deletions(refused):
                raise
            references.guard_new_references(project, names)
    except Conflict as exc:
        if isinstance(form, forms.BaseFormSet):
            raise ValidationError(exc.message) from exc
        form.add_error(field, exc.message)


class PrettyJSONField(forms.JSONField):
    """A JSON textarea showing the stored value indented, so conditions stay readable."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


class SegmentForm(forms.ModelForm):
    condition = PrettyJSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 16, "cols": 80})
    )

    class Meta:
        model = Segment
        fields = ("project", "name", "description", "type", "condition", "track_membership")
        help_texts = {
            "condition": (
                'Plunk\'s filter grammar, e.g. {"logic": "AND", "groups": [{"filters": '
                '[{"field": "event.signup", "operator": "triggered"}]}]}. '
                "Ignored for static segments."
            )
        }

    def clean(self):
        cleaned = super().clean()
        segment_type = cleaned.get("type")
        condition = cleaned.get("condition")
        if segment_type and "condition" not in self.errors:
            try:  # the same rule as the API: DYNAMIC needs a valid condition
                automation.segment_condition(segment_type, condition)
            except ValidationFailed as exc:
                for error in exc.errors:
                    message = error["message"]
                    self.add_error(
                        "condition",
                        message
                        if error["field"] == "condition"
                        else f"{error['field']}: {message}",
                    )
        project = cleaned.get("project") or getattr(self.instance, "project", None)
        if project is not None and not self.errors and segment_type == Segment.Type.DYNAMIC:
            segment_id = None if self.instance._state.adding else self.instance.pk
            try:  # segment.<id> references, checked as the API checks them
                automation.check_segment_references(project, condition, segment_id=segment_id)
            except ValidationFailed as exc:
                for error in exc.errors:
                    self.add_error("condition", f"{error['field']}: {error['message']}")
        if project is not None and not self.errors:
            names = (
                references.condition_event_names(condition)
                if segment_type == Segment.Type.DYNAMIC
                else set()
            )
            _guard(self, project, names, "condition")
        return cleaned


class WorkflowForm(forms.ModelForm):
    event_name = forms.CharField(
        label="Trigger event name",
        max_length=255,
        required=False,
        help_text="The event that starts this workflow (an EVENT trigger).",
    )

    class Meta:
        model = Workflow
        fields = ("project", "name", "description", "event_name", "enabled", "allow_reentry")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event_name"].initial = self.instance.trigger_event_name
        # Only EVENT workflows are created here; others keep their trigger when left blank.
        self.fields["event_name"].required = (
            self.instance._state.adding or self.instance.trigger_type == Workflow.TriggerType.EVENT
        )

    def clean_event_name(self):
        value = self.cleaned_data.get("event_name")
        if not value and not self.fields["event_name"].required:
            return None
        errors = FieldErrorList()
        name = check_event_name(errors, value, "event_name", trim=True)
        if errors:
            raise ValidationError([e["message"] for e in errors])
        return name

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("event_name")
        project = cleaned.get("project") or getattr(self.instance, "project", None)
        if project is not None and name and not self.errors:
            _guard(self, project, {name}, "event_name")
        return cleaned


class ContactForm(forms.ModelForm):
    """Email, subscription and data of a contact, checked by the API's rules; the admin saves
    it through :func:`contacts.update_contact`, which records the subscription events."""

    data = PrettyJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 60}),
        help_text='A JSON object, e.g. {"plan": "pro", "firstName": "Ada"}. Removing a key '
        "removes it from the contact.",
    )

    class Meta:
        model = Contact
        fields = ("email", "subscribed", "data")

    def clean_email(self):
        errors = FieldErrorList()
        email = check_email(errors, self.cleaned_data.get("email"))
        if errors:
            raise ValidationError([e["message"] for e in errors])
        taken = Contact.objects.filter(project_id=self.instance.project_id, email=email).exclude(
            pk=self.instance.pk
        )
        if taken.exists():
            raise ValidationError(f'A contact with email "{email}" already exists.')
        return email

    def clean_data(self):
        data = self.cleaned_data.get("data")
        if data is not None and not isinstance(data, dict):
            raise ValidationError("Contact data must be a JSON object.")
        return data
