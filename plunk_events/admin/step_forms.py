"""A workflow step's settings as a form per step type, in the units a person uses.

A form only translates between its fields and the stored ``config`` ("3 days" ⇄ ``259200``);
every rule stays :func:`workflow_graph.update_step`'s, the function behind
``PATCH /workflows/<id>/steps/<stepId>``. Its field errors (``config.timeout``) are put on the
field that produced the key (:meth:`StepForm.add_service_errors`), so the admin says what the
API would say, next to the right input.
"""

from __future__ import annotations

from typing import Any

from django import forms

from ..email_models import Template
from ..models import WorkflowStep
from ..services.step_config import (
    DELAY_UNITS,
    SUBSCRIPTION_ACTIONS,
    WEBHOOK_METHODS,
)
from ..services.workflow_values import OPERATORS
from .forms import PrettyJSONField

Type = WorkflowStep.Type

#: Units of a WAIT_FOR_EVENT timeout (stored in seconds), largest last.
TIMEOUT_UNITS = {"seconds": 1, **DELAY_UNITS}

OPERATOR_LABELS = {
    "equals": "equals",
    "notEquals": "does not equal",
    "contains": "contains",
    "notContains": "does not contain",
    "greaterThan": "is greater than",
    "lessThan": "is less than",
    "greaterThanOrEqual": "is at least",
    "lessThanOrEqual": "is at most",
    "exists": "exists",
    "notExists": "does not exist",
}
SUBSCRIPTION_LABELS = {
    "none": "Leave as it is",
    "subscribe": "Subscribe",
    "unsubscribe": "Unsubscribe",
}
VALUE_TYPES = (("text", "Text"), ("number", "Number"), ("boolean", "true / false"))


def split_seconds(seconds: int) -> tuple[int, str]:
    """``259200`` → ``(3, "days")``: the largest unit that divides the duration exactly."""
    for unit, size in reversed(TIMEOUT_UNITS.items()):
        if seconds % size == 0:
            return seconds // size, unit
    return seconds, "seconds"  # pragma: no cover (a second divides every integer)


def _number(value: float) -> int | float:
    """``3.0`` → ``3``: whole numbers are stored as JSON integers, as the API receives them."""
    return int(value) if float(value).is_integer() else value


def _choices(values, labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    return [(v, (labels or {}).get(v, v)) for v in values]


class StepForm(forms.Form):
    """The fields every step has (its name); subclasses add the config's fields."""

    name = forms.CharField(label="Step name", required=False, strip=False)

    #: Form field of each config key (or dotted path), for the service's ``config.<key>`` errors.
    config_fields: dict[str, str] = {}
    #: The rows of the page (a tuple shares a line: an amount and its unit).
    layout: tuple = ()

    def __init__(self, *args, step: WorkflowStep, **kwargs):
        self.step = step
        config = step.config if isinstance(step.config, dict) else {}
        kwargs.setdefault("initial", {"name": step.name, **self.initial_from(config)})
        super().__init__(*args, **kwargs)

    def initial_from(self, config: dict) -> dict:
        return {}

    def config_values(self) -> dict:
        """The config keys this form sets (``None``: remove the key)."""
        return {}

    def to_config(self) -> dict:
        """The stored config with this form's keys replaced; keys it does not show are kept."""
        config = dict(self.step.config) if isinstance(self.step.config, dict) else {}
        for key, value in self.config_values().items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        return config

    def fieldsets(self) -> list:
        return [(None, {"fields": ["name", *self.layout]})]

    def add_service_errors(self, errors: list[dict]) -> None:
        """Each ``{field, message}`` of a ``ValidationFailed`` on the field that made it."""
        for error in errors:
            path, message = error["field"], error["message"]
            target = None
            if path == "name":
                target = "name"
            elif path.startswith("config."):
                keys = path.split(".")[1:]  # the longest listed prefix: recipient.type, recipient
                target = next(
                    (
                        self.config_fields[".".join(keys[:n])]
                        for n in range(len(keys), 0, -1)
                        if ".".join(keys[:n]) in self.config_fields
                    ),
                    None,
                )
            if target is None and path not in ("config", "name"):
                message = f"{path}: {message}"
            self.add_error(target, message)


class DelayForm(StepForm):
    amount = forms.FloatField(label="Wait")
    unit = forms.ChoiceField(label="Unit", choices=_choices(DELAY_UNITS))
    config_fields = {"amount": "amount", "unit": "unit"}
    layout = (("amount", "unit"),)

    def initial_from(self, config):
        return {"amount": config.get("amount"), "unit": config.get("unit", "days")}

    def config_values(self):
        return {"amount": _number(self.cleaned_data["amount"]), "unit": self.cleaned_data["unit"]}


class WaitForEventForm(StepForm):
    event_name = forms.CharField(label="Wait for the event", required=False, strip=False)
    timeout_amount = forms.IntegerField(
        label="Give up after",
        required=False,
        help_text="At most 365 days; leave empty to wait for as long as it takes.",
    )
    timeout_unit = forms.ChoiceField(label="Unit", choices=_choices(TIMEOUT_UNITS))
    config_fields = {"eventName": "event_name", "timeout": "timeout_amount"}
    layout = ("event_name", ("timeout_amount", "timeout_unit"))

    def initial_from(self, config):
        initial = {"event_name": config.get("eventName", ""), "timeout_unit": "days"}
        timeout = config.get("timeout")
        if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
            initial["timeout_amount"], initial["timeout_unit"] = split_seconds(timeout)
        elif timeout is not None:
            initial["timeout_amount"], initial["timeout_unit"] = timeout, "seconds"
        return initial

    def config_values(self):
        amount = self.cleaned_data["timeout_amount"]
        size = TIMEOUT_UNITS[self.cleaned_data["timeout_unit"]]
        return {
            "eventName": self.cleaned_data["event_name"],
            "timeout": None if amount is None else amount * size,
        }


class HeadersField(forms.CharField):
    """HTTP headers as ``Name: value`` lines ⇄ a JSON object."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{k}: {v}" for k, v in value.items())
        return value

    def to_python(self, value):
        text = super().to_python(value)
        headers: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            key, colon, rest = line.partition(":")
            if not colon or not key.strip():
                raise forms.ValidationError(f"Line {number} is not “Name: value”.")
            headers[key.strip()] = rest.strip()
        return headers


class WebhookForm(StepForm):
    url = forms.CharField(label="URL", required=False, widget=forms.TextInput(attrs={"size": 60}))
    method = forms.ChoiceField(label="Method", choices=_choices(WEBHOOK_METHODS))
    headers = HeadersField(label="Headers", required=False, help_text="One “Name: value” per line.")
    body = PrettyJSONField(
        label="Body",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
        help_text="JSON, {{variables}} allowed in strings. Empty: the contact, workflow, run "
        "and event, as Plunk sends them.",
    )
    config_fields = {"url": "url", "method": "method", "headers": "headers", "body": "body"}
    layout = ("url", "method", "headers", "body")

    def initial_from(self, config):
        return {
            "url": config.get("url", ""),
            "method": config.get("method", "POST"),
            "headers": config.get("headers") or {},
            "body": config.get("body"),
        }

    def config_values(self):
        data = self.cleaned_data
        return {
            "url": data["url"],
            "method": data["method"],
            "headers": data["headers"] or None,
            "body": data["body"],
        }


class UpdateContactForm(StepForm):
    updates = PrettyJSONField(
        label="Set contact data",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text='A JSON object merged into the contact\'s data, e.g. {"onboarded": true}; '
        "null removes a key.",
    )
    subscription_action = forms.ChoiceField(
        label="Subscription", choices=_choices(SUBSCRIPTION_ACTIONS, SUBSCRIPTION_LABELS)
    )
    config_fields = {"updates": "updates", "subscriptionAction": "subscription_action"}
    layout = ("updates", "subscription_action")

    def initial_from(self, config):
        return {
            "updates": config.get("updates"),
            "subscription_action": config.get("subscriptionAction", "none"),
        }

    def config_values(self):
        action = self.cleaned_data["subscription_action"]
        return {
            "updates": self.cleaned_data["updates"],
            "subscriptionAction": None if action == "none" else action,
        }


class ConditionForm(StepForm):
    """A yes/no CONDITION; multi-branch ones use :class:`RawConfigForm`."""

    field = forms.CharField(
        label="Field",
        required=False,
        help_text="data.<key> (contact data), contact.email, contact.subscribed, or "
        "event.<key> (data of the event that started the run).",
    )
    operator = forms.ChoiceField(label="Operator", choices=_choices(OPERATORS, OPERATOR_LABELS))
    value = forms.CharField(
        label="Value", required=False, help_text="Not used by “exists” and “does not exist”."
    )
    value_type = forms.ChoiceField(label="as", choices=VALUE_TYPES)
    config_fields = {"field": "field", "operator": "operator", "value": "value"}
    layout = ("field", "operator", ("value", "value_type"))

    @staticmethod
    def handles(config: dict) -> bool:
        value = config.get("value")
        return config.get("mode") is None and (value is None or not isinstance(value, list | dict))

    def initial_from(self, config):
        value = config.get("value")
        kind = "text"
        if isinstance(value, bool):
            kind, value = "boolean", "true" if value else "false"
        elif isinstance(value, int | float):
            kind = "number"
        return {
            "field": config.get("field", ""),
            "operator": config.get("operator", "equals"),
            "value": "" if value is None else value,
            "value_type": kind,
        }

    def clean(self):
        cleaned = super().clean()
        text, kind = cleaned.get("value", ""), cleaned.get("value_type")
        if text == "":
            cleaned["typed_value"] = None
        elif kind == "number":
            try:
                cleaned["typed_value"] = _number(float(text))
            except ValueError:
                self.add_error("value", "Enter a number, or choose Text.")
        elif kind == "boolean":
            if text.strip().lower() not in ("true", "false"):
                self.add_error("value", "Enter true or false, or choose Text.")
            else:
                cleaned["typed_value"] = text.strip().lower() == "true"
        else:
            cleaned["typed_value"] = text
        return cleaned

    def config_values(self):
        return {
            "field": self.cleaned_data["field"],
            "operator": self.cleaned_data["operator"],
            "value": self.cleaned_data["typed_value"],
        }


class ExitForm(StepForm):
    reason = forms.CharField(
        label="Reason",
        required=False,
        help_text="Recorded on the run as its exit reason (empty: exit_step).",
    )
    config_fields = {"reason": "reason"}
    layout = ("reason",)

    def initial_from(self, config):
        return {"reason": config.get("reason") or ""}

    def config_values(self):
        return {"reason": self.cleaned_data["reason"] or None}


class SendEmailForm(StepForm):
    template = forms.ChoiceField(label="Template", required=False)
    recipient_type = forms.ChoiceField(
        label="Send to",
        choices=[("CONTACT", "The contact of the run"), ("CUSTOM", "Another address")],
    )
    custom_email = forms.CharField(
        label="Address", required=False, help_text="Used when sending to another address."
    )
    config_fields = {
        "templateId": "template",
        "recipient.type": "recipient_type",
        "recipient": "custom_email",
    }
    layout = ("template", ("recipient_type", "custom_email"))

    def __init__(self, *args, step: WorkflowStep, **kwargs):
        super().__init__(*args, step=step, **kwargs)
        templates = Template.objects.filter(project_id=step.project_id).order_by("name", "pk")
        choices = [("", "— choose a template —")]
        choices += [(str(t.pk), f"{t.name} ({t.get_type_display()})") for t in templates]
        current = self.initial.get("template")
        if current and current not in {value for value, _ in choices}:
            choices.append((current, f"A template that no longer exists ({current})"))
        self.fields["template"].choices = choices

    def initial_from(self, config):
        recipient = config.get("recipient") if isinstance(config.get("recipient"), dict) else {}
        return {
            "template": config.get("templateId") or "",
            "recipient_type": recipient.get("type", "CONTACT"),
            "custom_email": recipient.get("customEmail", ""),
        }

    def config_values(self):
        data = self.cleaned_data
        recipient = None
        if data["recipient_type"] == "CUSTOM":
            recipient = {"type": "CUSTOM", "customEmail": data["custom_email"]}
        return {"templateId": data["template"] or None, "recipient": recipient}


class RawConfigForm(StepForm):
    """Any config as JSON: multi-branch conditions, and types without a form of their own."""

    config = PrettyJSONField(
        label="Settings (JSON)", required=False, widget=forms.Textarea(attrs={"rows": 14})
    )
    layout = ("config",)

    def initial_from(self, config):
        return {"config": config}

    def to_config(self):
        return self.cleaned_data["config"]

    def add_service_errors(self, errors):
        for error in errors:
            if error["field"] == "name":
                self.add_error("name", error["message"])
            else:
                self.add_error("config", f"{error['field']}: {error['message']}")


FORMS = {
    Type.DELAY: DelayForm,
    Type.WAIT_FOR_EVENT: WaitForEventForm,
    Type.WEBHOOK: WebhookForm,
    Type.UPDATE_CONTACT: UpdateContactForm,
    Type.CONDITION: ConditionForm,
    Type.EXIT: ExitForm,
    Type.SEND_EMAIL: SendEmailForm,
}


def step_form_class(step: WorkflowStep) -> type[StepForm]:
    form = FORMS.get(step.type, RawConfigForm)
    config: Any = step.config if isinstance(step.config, dict) else {}
    if form is ConditionForm and not ConditionForm.handles(config):
        return RawConfigForm
    return form
