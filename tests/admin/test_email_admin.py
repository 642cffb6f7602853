"""Email in the admin: templates (list, edit through the service, delete guard, preview for a
contact with its data escaped inside a sandboxed frame) and emails (read-only changelist with
filters and an index-friendly date drill-down, the email's page with its events), and the
permissions of both."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from plunk_events.models import Contact, Email, Event, Template
from plunk_events.services import templates, workflows

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def make_template(project, **fields) -> Template:
    values = {
        "name": "Welcome",
        "subject": "Hi {{firstName}}",
        "body": "<h1>Hello {{firstName}}</h1><p>Your plan: {{plan}}</p>",
        "from_email": "hello@example.com",
        **fields,
    }
    return templates.create_template(project, **values)


def make_email(project, contact, *, template=None, when=None, **fields) -> Email:
    values = {
        "project": project,
        "contact": contact,
        "template": template,
        "source": Email.Source.TRANSACTIONAL,
        "to_email": contact.email,
        "from_email": "hello@example.com",
        "subject": "Hi Ann",
        "body": "<p>Hi Ann</p>",
        **fields,
    }
    email = Email.objects.create(**values)
    if when is not None:
        Email.objects.filter(pk=email.pk).update(created_at=when)
        email.refresh_from_db()
    return email


def frame_srcdoc(page: str) -> str:
    """The ``srcdoc`` of the page's one email frame, checking the frame is fully sandboxed."""
    frames = re.findall(r"<iframe\b[^>]*>", page)
    assert len(frames) == 1, frames
    assert 'sandbox=""' in frames[0]
    assert "allow-" not in frames[0]  # no allow-scripts, allow-same-origin, allow-forms, …
    return html.unescape(re.search(r'srcdoc="([^"]*)"', frames[0]).group(1))


# ---------------------------------------------------------------------------------------------
# Templates: list and edit


def test_template_changelist_one_project_filters_and_search(admin_client, project, other_project):
    make_template(project, name="Welcome")
    make_template(project, name="Receipt", type="TRANSACTIONAL", subject="Your receipt")
    make_template(other_project, name="Theirs")
    url = reverse("admin:plunk_events_template_changelist")
    assert admin_client.get(url).status_code == 302  # to the first project
    response = admin_client.get(url, {"project": project.pk})
    assert response.status_code == 200
    page = response.content.decode()
    for header in ("Name", "Type", "Subject", "From", "Updated"):
        assert f">{header}</a>" in page or f">{header}</span>" in page, header
    assert ">Project</" not in page

    def names(**params):
        response = admin_client.get(url, {"project": project.pk, **params})
        return sorted(t.name for t in response.context["cl"].result_list)

    assert names() == ["Receipt", "Welcome"]
    assert names(type__exact="TRANSACTIONAL") == ["Receipt"]
    assert names(q="receipt") == ["Receipt"]
    theirs = admin_client.get(url, {"project": other_project.pk}).context["cl"].result_list
    assert [t.name for t in theirs] == ["Theirs"]


def form_data(project, **fields) -> dict:
    return {
        "project": project.pk,
        "name": "Reset",
        "description": "",
        "type": "TRANSACTIONAL",
        "body_format": "MARKDOWN",
        "subject": "Reset your password",
        "from_email": " hello@example.com ",
        "from_name": "",
        "reply_to": "",
        "body": "# Hi {{firstName}}",
        **fields,
    }


def test_template_add_goes_through_the_service(admin_client, project):
    url = reverse("admin:plunk_events_template_add")
    response = admin_client.post(url, form_data(project))
    assert response.status_code == 302, response.context["adminform"].form.errors
    template = Template.objects.get(project=project)
    assert (template.name, template.from_email, template.from_name, template.reply_to) == (
        "Reset",
        "hello@example.com",
        None,
        None,
    )
    assert (template.type, template.body_format) == ("TRANSACTIONAL", "MARKDOWN")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"from_email": "not-an-address"}, "from_email", "Invalid email"),
        ({"from_email": ""}, "from_email", "This field is required."),
        ({"reply_to": "nope@"}, "reply_to", "Invalid email"),
        ({"subject": "Hi\r\nBcc: all@example.com"}, "subject", "line breaks"),
    ],
)
def test_template_form_shows_the_services_errors_and_writes_nothing(
    admin_client, project, fields, field, message
):
    response = admin_client.post(
        reverse("admin:plunk_events_template_add"), form_data(project, **fields)
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert not Template.objects.exists()


def test_template_change_keeps_its_project_and_links_the_preview(admin_client, project):
    template = make_template(project)
    url = reverse("admin:plunk_events_template_change", args=[template.pk])
    page = admin_client.get(url).content.decode()
    preview = reverse("admin:plunk_events_template_preview", args=[template.pk])
    assert f'href="{preview}"' in page
    data = form_data(project, name="Welcome 2", subject="Hey {{firstName}}")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.name, template.subject, template.project_id) == (
        "Welcome 2",
        "Hey {{firstName}}",
        project.pk,
    )


def test_a_template_used_by_a_workflow_cannot_be_deleted(admin_client, project):
    template = make_template(project)
    workflow = workflows.create_workflow(
        project,
        name="Onboarding",
        event_name="signed_up",
        steps=[{"type": "SEND_EMAIL", "name": "Send", "config": {"templateId": str(template.pk)}}],
    )
    change = admin_client.get(reverse("admin:plunk_events_template_change", args=[template.pk]))
    page = change.content.decode()
    workflow_url = reverse("admin:plunk_events_workflow_change", args=[workflow.pk])
    assert f'<a href="{workflow_url}">Onboarding</a>' in page
    delete_url = reverse("admin:plunk_events_template_delete", args=[template.pk])
    assert delete_url not in page
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    # The bulk action refuses a selection holding it, as Django refuses objects one may not
    # delete, and deletes nothing.
    unused = make_template(project, name="Unused")
    changelist = reverse("admin:plunk_events_template_changelist")
    selection = {"action": "delete_selected", "_selected_action": [template.pk, unused.pk]}
    assert admin_client.post(changelist, {**selection, "post": "yes"}).status_code == 403
    assert Template.objects.count() == 2
    response = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [unused.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert list(Template.objects.values_list("name", flat=True)) == ["Welcome"]


def test_a_template_named_meanwhile_is_reported_not_a_500(admin_client, project, monkeypatch):
    """A step that comes to name the template after the confirmation page was drawn."""
    template = make_template(project)
    monkeypatch.setattr(
        "plunk_events.admin.email_templates.TemplateAdmin.has_delete_permission",
        lambda *a, **k: True,
    )
    workflows.create_workflow(
        project,
        name="Late",
        event_name="signed_up",
        steps=[{"type": "SEND_EMAIL", "name": "Send", "config": {"templateId": str(template.pk)}}],
    )
    delete_url = reverse("admin:plunk_events_template_delete", args=[template.pk])
    response = admin_client.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:plunk_events_template_change", args=[template.pk])
    assert any("Late" in m for m in messages_of(response))
    assert Template.objects.filter(pk=template.pk).exists()


def test_an_unused_template_is_deleted_and_its_emails_stay(admin_client, project):
    template = make_template(project)
    contact = Contact.objects.create(project=project, email="ann@example.com")
    email = make_email(project, contact, template=template)
    delete_url = reverse("admin:plunk_events_template_delete", args=[template.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Template.objects.exists()
    email.refresh_from_db()
    assert email.template_id is None


# ---------------------------------------------------------------------------------------------
# Templates: preview


def preview_url(template) -> str:
    return reverse("admin:plunk_events_template_preview", args=[template.pk])


def test_preview_renders_for_a_contact_and_escapes_its_data(admin_client, project):
    template = make_template(
        project,
        subject="Hi {{firstName}}",
        body=f"<h1>Hello {{{{firstName}}}}</h1><p>{{{{plan}}}}</p>{SCRIPT}",
    )
    contact = Contact.objects.create(
        project=project,
        email="ann@example.com",
        data={"firstName": f"Ann {SCRIPT}", "plan": '"pro" & <b>more</b>'},
    )
    response = admin_client.get(preview_url(template), {"contact": " ANN@example.com "})
    assert response.status_code == 200
    assert response.context["contact"] == contact
    page = response.content.decode()
    # Nowhere on the page does the template's or the contact's markup appear unescaped ...
    assert SCRIPT not in page
    assert "<b>more</b>" not in page
    # ... the subject is text, and the HTML is only inside the sandboxed frame.
    assert f"Hi Ann {html.escape(SCRIPT)}" in page
    body = frame_srcdoc(page)
    assert f"<h1>Hello Ann {html.escape(SCRIPT)}</h1>" in body  # contact data escaped once
    assert "<p>&quot;pro&quot; &amp; &lt;b&gt;more&lt;/b&gt;</p>" in body
    assert body.endswith(SCRIPT)  # the template's own script: inert in the sandbox
    assert response.context["rendered"].text.startswith(f"Hello Ann {SCRIPT}")


def test_preview_by_contact_id_with_send_data(admin_client, project):
    template = make_template(project, body="<p>Code {{resetCode}} for {{email}}</p>")
    contact = Contact.objects.create(project=project, email="bo@example.com")
    response = admin_client.get(
        preview_url(template), {"contact": str(contact.pk), "data": '{"resetCode": "1234"}'}
    )
    assert "<p>Code 1234 for bo@example.com</p>" in frame_srcdoc(response.content.decode())


def test_preview_without_a_contact_uses_a_sample(admin_client, project):
    template = make_template(project)
    response = admin_client.get(preview_url(template))
    assert response.status_code == 200
    assert response.context["contact"] is None
    assert response.context["rendered"].subject == "Hi Jane"
    assert "jane@example.com" in response.content.decode()


@pytest.mark.parametrize("value", ["nobody@example.com", "theirs@example.com"])
def test_preview_of_an_unknown_or_foreign_contact_is_a_form_error(
    admin_client, project, other_project, value
):
    Contact.objects.create(project=other_project, email="theirs@example.com")
    template = make_template(project)
    response = admin_client.get(preview_url(template), {"contact": value})
    assert response.status_code == 200
    assert response.context["contact"] is None
    assert f"No contact “{value}”" in response.context["form"].errors["contact"][0]


def test_preview_with_bad_data_json_is_a_form_error(admin_client, project):
    template = make_template(project)
    response = admin_client.get(preview_url(template), {"contact": "", "data": "[1, 2]"})
    assert response.context["form"].errors["data"] == ["Enter a JSON object."]


# ---------------------------------------------------------------------------------------------
# Emails


@pytest.fixture
def sent(project, other_project):
    """Three emails of ``project`` (one per status and source) and one of another project."""
    ann = Contact.objects.create(project=project, email="ann@example.com")
    bo = Contact.objects.create(project=project, email="bo@example.com")
    template = make_template(project)
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    delivered = make_email(
        project,
        ann,
        template=template,
        when=now - timedelta(days=400),
        status=Email.Status.CLICKED,
        source=Email.Source.WORKFLOW,
        marketing=True,
        message_id="<abc@mail.example>",
        sent_at=now - timedelta(days=400),
        delivered_at=now - timedelta(days=400),
        opened_at=now - timedelta(days=399),
        clicked_at=now - timedelta(days=399),
        opens=3,
        clicks=1,
    )
    failed = make_email(
        project, bo, when=now - timedelta(days=3), status=Email.Status.FAILED, error="No sender"
    )
    pending = make_email(project, ann, when=now)
    theirs = Contact.objects.create(project=other_project, email="ann@example.com")
    make_email(other_project, theirs, when=now)
    return {
        "delivered": delivered,
        "failed": failed,
        "pending": pending,
        "ann": ann,
        "template": template,
    }


def emails_url(project, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"project": project.pk, **params}.items())
    return reverse("admin:plunk_events_email_changelist") + "?" + query


def listed(response) -> list:
    return [e.pk for e in response.context["cl"].result_list]


def test_email_changelist_columns_filters_and_search(admin_client, project, sent):
    assert admin_client.get(reverse("admin:plunk_events_email_changelist")).status_code == 302
    response = admin_client.get(emails_url(project))
    assert response.status_code == 200
    assert listed(response) == [sent["pending"].pk, sent["failed"].pk, sent["delivered"].pk]
    page = response.content.decode()
    for column in ("To", "Subject", "Status", "Activity"):
        assert re.search(rf">\s*{column}\s*<", page), column
    # Status and source in one cell; every time and counter in the activity cell.
    assert 'Clicked<br><span class="plunk-small plunk-muted">Workflow</span>' in page
    activity = re.findall(r'<td class="field-activity">(.*?)</td>', page)[2]
    lines = re.findall(
        r'<span class="plunk-activity">(\w+) <time[^>]*>([^<]*)</time>([^<]*)', activity
    )
    assert lines == [
        ("Queued", "2024-02-04 12:00", ""),
        ("Sent", "2024-02-04 12:00", ""),
        ("Delivered", "2024-02-04 12:00", ""),
        ("Opened", "2024-02-05 12:00", " ×3"),
        ("Clicked", "2024-02-05 12:00", " ×1"),
    ]
    assert reverse("admin:plunk_events_email_add") not in page
    assert listed(admin_client.get(emails_url(project, status__exact="FAILED"))) == [
        sent["failed"].pk
    ]
    assert listed(admin_client.get(emails_url(project, source__exact="WORKFLOW"))) == [
        sent["delivered"].pk
    ]
    by_contact = admin_client.get(emails_url(project, q="ANN@example.com"))
    assert listed(by_contact) == [sent["pending"].pk, sent["delivered"].pk]
    by_message_id = admin_client.get(emails_url(project, q="<abc@mail.example>"))
    assert listed(by_message_id) == [sent["delivered"].pk]


def test_email_date_drilldown_probes_the_index_without_distinct(admin_client, project, sent):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(emails_url(project))
    sql = " ".join(q["sql"] for q in queries.captured_queries).upper()
    assert "DISTINCT" not in sql
    assert len(queries.captured_queries) <= 12
    years = [c["title"] for c in response.context_data["cl"].date_drilldown()["choices"]]
    assert years == ["2024", "2025"]

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(emails_url(project, created_at__year=2025))
    assert "DISTINCT" not in " ".join(q["sql"] for q in queries.captured_queries).upper()
    drill = response.context["cl"].date_drilldown()
    assert [c["title"] for c in drill["choices"]] == ["March 2025"]
    assert listed(response) == [sent["pending"].pk, sent["failed"].pk]

    response = admin_client.get(emails_url(project, created_at__year=2025, created_at__month=3))
    drill = response.context["cl"].date_drilldown()
    assert [c["title"] for c in drill["choices"]] == ["March 7", "March 10"]
    response = admin_client.get(
        emails_url(project, created_at__year=2025, created_at__month=3, created_at__day=7)
    )
    assert listed(response) == [sent["failed"].pk]
    page = response.content.decode()
    assert "March 7" in page


def test_email_page_is_read_only_with_links_body_frame_and_events(admin_client, project, sent):
    email = sent["delivered"]
    Event.objects.create(project=project, contact=sent["ann"], name="email.sent", email_id=email.pk)
    Event.objects.create(
        project=project, contact=sent["ann"], name="email.open", email_id=email.pk,
        data={"opens": 1},
    )  # fmt: skip
    Event.objects.create(project=project, contact=sent["ann"], name="email.open")  # another email
    Email.objects.filter(pk=email.pk).update(body=f"<p>Hi</p>{SCRIPT}")
    response = admin_client.get(reverse("admin:plunk_events_email_change", args=[email.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    contact_url = reverse("admin:plunk_events_contact_change", args=[sent["ann"].pk])
    template_url = reverse("admin:plunk_events_template_change", args=[sent["template"].pk])
    assert f'<a href="{contact_url}">ann@example.com</a>' in page
    assert f'<a href="{template_url}">Welcome</a>' in page
    assert SCRIPT not in page
    assert frame_srcdoc(page) == f"<p>Hi</p>{SCRIPT}"
    assert page.count("email.open</a>") == 1 and page.count("email.sent</a>") == 1
    assert 'name="_save"' not in page
    assert reverse("admin:plunk_events_email_delete", args=[email.pk]) not in page


def test_email_admin_refuses_writes(admin_client, project, sent):
    email = sent["failed"]
    assert admin_client.get(reverse("admin:plunk_events_email_add")).status_code == 403
    change = reverse("admin:plunk_events_email_change", args=[email.pk])
    assert admin_client.post(change, {"subject": "changed"}).status_code == 403
    delete = reverse("admin:plunk_events_email_delete", args=[email.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    email.refresh_from_db()
    assert email.subject == "Hi Ann"


# ---------------------------------------------------------------------------------------------
# Permissions


def test_staff_without_view_permissions_get_403(staff_client, project, sent):
    client = staff_client("view_contact")
    template = sent["template"]
    for url in (
        reverse("admin:plunk_events_template_changelist") + f"?project={project.pk}",
        reverse("admin:plunk_events_template_change", args=[template.pk]),
        preview_url(template),
        emails_url(project),
        reverse("admin:plunk_events_email_change", args=[sent["pending"].pk]),
    ):
        assert client.get(url).status_code == 403, url


def test_view_only_staff_read_emails_and_preview_templates(staff_client, project, sent):
    client = staff_client("view_email", "view_template", "view_contact")
    assert client.get(emails_url(project)).status_code == 200
    page = client.get(reverse("admin:plunk_events_email_change", args=[sent["pending"].pk]))
    assert page.status_code == 200
    template = sent["template"]
    change = client.get(reverse("admin:plunk_events_template_change", args=[template.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    preview = client.get(preview_url(template), {"contact": "ann@example.com"})
    assert preview.status_code == 200 and preview.context["contact"] == sent["ann"]
    assert (
        client.post(
            reverse("admin:plunk_events_template_change", args=[template.pk]), {"name": "x"}
        ).status_code
        == 403
    )


def test_picking_a_contact_needs_the_view_permission_on_contacts(staff_client, sent):
    client = staff_client("view_template")
    template = sent["template"]
    assert client.get(preview_url(template), {"contact": "ann@example.com"}).status_code == 403
    sample = client.get(preview_url(template))
    assert sample.status_code == 200
    page = sample.content.decode()
    assert "ann@example.com" not in page  # no contact suggestions either
    assert 'id="plunk-preview-form"' not in page
