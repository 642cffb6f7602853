"""Email templates in the admin: edited through the template service, previewed for a contact.

A template's HTML is someone's input: the preview shows it only inside
``<iframe sandbox srcdoc=…>``, whose empty ``sandbox`` gives it no scripts, no forms and an
opaque origin, so it can neither run in nor reach the admin. The email pages (:mod:`.emails`)
show sent bodies the same way.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from ..email_models import Template
from ..models import Contact
from ..services import email_render, templates
from ..services.errors import ValidationFailed
from .base import ProjectScopedMixin, adopt, date_time
from .filters import ProjectFilter

#: Contacts offered by the preview's email field (the project's newest).
PREVIEW_SUGGESTIONS = 20
#: The contact a preview uses when none is chosen (no links: it has no token).
SAMPLE_CONTACT = {"email": "jane@example.com", "subscribed": True, "data": {"firstName": "Jane"}}


def sandboxed(html: str, title: str):
    """``html`` in a sandboxed frame: no scripts, no forms, an opaque origin."""
    return format_html(
        '<iframe sandbox="" srcdoc="{}" title="{}" class="plunk-email-frame"></iframe>', html, title
    )


# ---------------------------------------------------------------------------------------------
# Templates


class TemplateForm(forms.ModelForm):
    """The template service's rules (:func:`templates.clean_template_values`) as field errors."""

    class Meta:
        model = Template
        fields = (
            "project",
            "name",
            "description",
            "type",
            "body_format",
            "subject",
            "from_email",
            "from_name",
            "reply_to",
            "body",
        )
        labels = {"from_email": "From", "reply_to": "Reply-To", "body_format": "Body format"}
        help_texts = {
            "subject": "One line; {{placeholders}} are filled at send time.",
            "body": "HTML or Markdown (see Body format). {{firstName}}, {{email}}, "
            "{{data.plan}}, {{plan ?? 'free'}} are filled with the contact's data, escaped; "
            "{{unsubscribeUrl}} links to the contact's unsubscribe page.",
            "from_email": "The sender address (hello@example.com).",
            "type": "Marketing mail goes to subscribed contacts only, with List-Unsubscribe "
            "headers; transactional and headless mail goes to anyone.",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2, "cols": 80}),
            "subject": forms.TextInput(attrs={"size": 80}),
            "body": forms.Textarea(attrs={"rows": 20, "cols": 100, "class": "plunk-code"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "from_email" in self.fields:
            self.fields["from_email"].required = True

    def clean(self):
        cleaned = super().clean()
        values = {f: cleaned[f] for f in templates.TEMPLATE_FIELDS if f in cleaned}
        if len(values) < len(templates.TEMPLATE_FIELDS):
            return cleaned  # a field already has its error
        try:
            cleaned.update(templates.clean_template_values(values, creating=True))
        except ValidationFailed as exc:
            model_field = {api: model for model, api in templates.API_FIELDS.items()}
            for error in exc.errors:
                self.add_error(model_field.get(error["field"]), error["message"])
        return cleaned


@admin.register(Template)
class TemplateAdmin(ProjectScopedMixin, admin.ModelAdmin):
    """One project's templates at a time, as its emails; written through the template service."""

    form = TemplateForm
    list_display = ("name", "type", "subject_line", "sender", "updated")
    list_filter = (ProjectFilter, "type")
    search_fields = ("name", "subject", "description")
    search_help_text = "Part of the name, the subject or the description."
    ordering = ("-updated_at", "-id")
    readonly_fields = ("used_by", "created_at", "updated_at")
    change_form_template = "admin/plunk_events/template/change_form.html"

    class Media:
        css = {"all": ["plunk_events/admin.css", "plunk_events/email_admin.css"]}

    def get_fields(self, request, obj=None):
        fields = list(TemplateForm.Meta.fields)
        if obj is not None:
            fields += ["used_by", "created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        extra = ("project",) if obj is not None else ()
        return (*self.readonly_fields, *extra)

    @admin.display(description="subject", ordering="subject")
    def subject_line(self, obj):
        return Truncator(obj.subject).chars(60)

    @admin.display(description="from", ordering="from_email")
    def sender(self, obj):
        return obj.from_email

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj):
        return date_time(obj.updated_at)

    @admin.display(description="used by workflows")
    def used_by(self, obj):
        used = templates.workflows_using(obj.project, obj.pk)
        if not used:
            return "—"
        site = self.admin_site.name
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse(f"{site}:plunk_events_workflow_change", args=[w.pk]), w.name) for w in used),
        )

    def save_model(self, request, obj, form, change):
        values = {f: form.cleaned_data[f] for f in templates.TEMPLATE_FIELDS}
        if change:
            saved = templates.update_template(obj.project, obj.pk, **values)
        else:
            saved = templates.create_template(form.cleaned_data["project"], **values)
        adopt(obj, saved)

    def has_delete_permission(self, request, obj=None):
        """Not while a workflow's SEND_EMAIL step names the template (the service refuses)."""
        if obj is not None and templates.workflows_using(obj.project, obj.pk):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        templates.delete_template(obj.project, obj.pk)

    def delete_queryset(self, request, queryset):
        for template in queryset.select_related("project"):
            try:
                templates.delete_template(template.project, template.pk)
            except templates.TemplateInUse as refused:
                self.message_user(request, refused.message, messages.WARNING)

    def delete_view(self, request, object_id, extra_context=None):
        """A step that came to name the template since the page was drawn: a message, not a 500."""
        try:
            return super().delete_view(request, object_id, extra_context)
        except templates.TemplateInUse as refused:
            self.message_user(request, refused.message, messages.ERROR)
            url = reverse(f"{self.admin_site.name}:plunk_events_template_change", args=[object_id])
            return HttpResponseRedirect(url)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="plunk_events_template_preview",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        extra["preview_url"] = reverse(
            f"{self.admin_site.name}:plunk_events_template_preview", args=[object_id]
        )
        return super().change_view(request, object_id, form_url, extra)

    def preview_view(self, request, object_id):
        """The saved template rendered by :func:`email_render.render_message` for a contact of
        its project (chosen by email or id; reading one needs the view permission on contacts)
        or, without one, for a sample contact."""
        template = self.get_object(request, unquote(object_id))
        if template is None:
            raise Http404("No such template")
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        may_pick = self._may_read_contacts(request)
        if request.GET.get("contact", "").strip() and not may_pick:
            raise PermissionDenied
        bound = may_pick and ("contact" in request.GET or "data" in request.GET)
        form = PreviewForm(request.GET if bound else None, project=template.project)
        contact, data = None, None
        if form.is_valid():
            contact, data = form.cleaned_data["contact"], form.cleaned_data["data"]
        if contact is not None:
            variables = email_render.contact_variables(contact, data)
        else:
            sample = SimpleNamespace(id=None, project_id=template.project_id, **SAMPLE_CONTACT)
            variables = email_render.contact_variables(sample, data, links=False)
        rendered = email_render.render_message(
            template.subject, template.body, template.body_format, variables
        )
        site = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Preview of “{template.name}”",
            "template": template,
            "form": form,
            "contact": contact,
            "contact_url": reverse(f"{site}:plunk_events_contact_change", args=[contact.pk])
            if contact is not None
            else None,
            "sample": SAMPLE_CONTACT,
            "rendered": rendered,
            "frame": sandboxed(rendered.html, "The rendered HTML body"),
            "change_url": reverse(f"{site}:plunk_events_template_change", args=[template.pk]),
            "may_pick": may_pick,
            "suggestions": list(
                Contact.objects.filter(project_id=template.project_id)
                .order_by("-created_at", "-id")
                .values_list("email", flat=True)[:PREVIEW_SUGGESTIONS]
            )
            if may_pick
            else [],
        }
        return TemplateResponse(request, "admin/plunk_events/template/preview.html", context)

    def _may_read_contacts(self, request) -> bool:
        try:
            return self.admin_site.get_model_admin(Contact).has_view_permission(request)
        except NotRegistered:
            return request.user.has_perm("plunk_events.view_contact")


class PreviewForm(forms.Form):
    """The preview's contact (an email or an id of the template's project) and extra data."""

    contact = forms.CharField(
        required=False,
        label="Contact",
        help_text="An email address or contact id of this project; empty for a sample contact.",
        widget=forms.TextInput(attrs={"size": 40, "list": "plunk-contacts"}),
    )
    data = forms.JSONField(
        required=False,
        label="Send data",
        help_text='Extra variables as in POST /v1/send\'s "data", e.g. {"resetCode": "1234"}.',
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_contact(self):
        raw = self.cleaned_data["contact"].strip()
        if not raw:
            return None
        contacts = Contact.objects.filter(project=self.project)
        try:
            found = contacts.filter(pk=uuid.UUID(raw)).first()
        except ValueError:
            found = contacts.filter(email=raw.lower()).first()
        if found is None:
            raise forms.ValidationError(f"No contact “{raw}” in the project {self.project}.")
        return found

    def clean_data(self):
        data = self.cleaned_data["data"]
        if data is not None and not isinstance(data, dict):
            raise forms.ValidationError("Enter a JSON object.")
        return data
