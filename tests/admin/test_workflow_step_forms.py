"""Issue 13: a workflow step's settings as a form per step type, with units ("3 days", not
259200), saved through the workflow graph service, its field errors shown on the form."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from plunk_events.admin.step_forms import split_seconds
from plunk_events.models import Contact, Project, WorkflowStep
from plunk_events.services import executions, templates, workflows

WAIT = {"eventName": "review", "timeout": 259_200}


@pytest.fixture
def flow(project):
    return workflows.create_workflow(
        project,
        name="Every step",
        event_name="purchase",
        steps=[
            {"type": "DELAY", "name": "Pause", "config": {"amount": 1, "unit": "hours"}},
            {"type": "WAIT_FOR_EVENT", "name": "Wait for a review", "config": WAIT},
            {
                "type": "WEBHOOK",
                "name": "Tell the CRM",
                "config": {"url": "https://crm.example.com/hook", "headers": {"X-Key": "k"}},
            },
            {"type": "UPDATE_CONTACT", "name": "Mark", "config": {"updates": {"buyer": True}}},
            {"type": "SEND_EMAIL", "name": "Say thanks", "config": {}},
            {
                "type": "CONDITION",
                "name": "Big spender?",
                "config": {"field": "data.total", "operator": "greaterThan", "value": 100},
            },
            {"type": "EXIT", "name": "Done", "config": {"reason": "thanked"}},
        ],
    )


def step(workflow, step_type) -> WorkflowStep:
    return workflow.steps.get(type=step_type)


def step_url(workflow, s: WorkflowStep) -> str:
    return reverse("admin:plunk_events_workflow_step", args=[workflow.pk, s.pk])


def post(client, workflow, s, data):
    return client.post(step_url(workflow, s), {"name": s.name, **data})


def test_timeouts_are_shown_in_the_largest_exact_unit():
    assert split_seconds(259_200) == (3, "days")
    assert split_seconds(7_200) == (2, "hours")
    assert split_seconds(90) == (90, "seconds")
    assert split_seconds(86_400 + 3_600) == (25, "hours")


def test_the_workflow_page_links_each_step_but_the_trigger_to_its_form(admin_client, flow):
    page = admin_client.get(reverse("admin:plunk_events_workflow_change", args=[flow.pk]))
    html = page.content.decode()
    for s in flow.steps.exclude(type="TRIGGER"):
        assert f'href="{step_url(flow, s)}"' in html
    trigger = step(flow, "TRIGGER")
    assert step_url(flow, trigger) not in html
    assert admin_client.get(step_url(flow, trigger)).status_code == 404


def test_a_wait_shows_its_timeout_with_a_unit_and_saves_seconds(admin_client, flow):
    wait = step(flow, "WAIT_FOR_EVENT")
    response = admin_client.get(step_url(flow, wait))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="timeout_amount" value="3"' in html
    assert '<option value="days" selected>days</option>' in html
    assert "259200" not in html

    response = post(
        admin_client,
        flow,
        wait,
        {"event_name": "  review.posted ", "timeout_amount": "2", "timeout_unit": "hours"},
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"#step-{wait.pk}")
    wait.refresh_from_db()
    assert wait.config == {"eventName": "review.posted", "timeout": 7200}  # trimmed by the service
    entry = LogEntry.objects.get()
    assert "Wait for a review" in entry.get_change_message()


def test_the_services_errors_are_shown_on_the_field_and_nothing_changes(admin_client, flow):
    wait = step(flow, "WAIT_FOR_EVENT")
    response = post(
        admin_client,
        flow,
        wait,
        {"event_name": "review", "timeout_amount": "400", "timeout_unit": "days"},
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["timeout_amount"] == ["Timeout must be between 1 and 31536000 seconds"]
    assert "Please correct the error below." in response.content.decode()
    # The chain left the wait by both outcomes: the timeout cannot be removed (graph rule).
    response = post(admin_client, flow, wait, {"event_name": "review", "timeout_unit": "days"})
    assert (
        "delete it before removing the timeout"
        in response.context["form"].errors["timeout_amount"][0]
    )
    response = post(
        admin_client, flow, wait, {"event_name": " ", "timeout_amount": "1", "timeout_unit": "days"}
    )
    assert response.context["form"].errors["event_name"] == [
        "String must contain at least 1 character(s)"
    ]
    wait.refresh_from_db()
    assert wait.config == WAIT
    assert not LogEntry.objects.exists()


def test_delay_amount_and_unit(admin_client, flow):
    delay = step(flow, "DELAY")
    html = admin_client.get(step_url(flow, delay)).content.decode()
    assert 'name="amount" value="1"' in html and '<option value="hours" selected>' in html
    post(admin_client, flow, delay, {"amount": "2", "unit": "days"})
    delay.refresh_from_db()
    assert delay.config == {"amount": 2, "unit": "days"}
    response = post(admin_client, flow, delay, {"amount": "400", "unit": "days"})
    assert response.context["form"].errors["amount"] == ["Delay must be at most 365 days"]
    response = post(admin_client, flow, delay, {"amount": "0", "unit": "days"})
    assert response.context["form"].errors["amount"] == ["Number must be greater than 0"]
    delay.refresh_from_db()
    assert delay.config == {"amount": 2, "unit": "days"}


def test_webhook_url_method_headers_and_body(admin_client, flow):
    hook = step(flow, "WEBHOOK")
    html = admin_client.get(step_url(flow, hook)).content.decode()
    assert "X-Key: k</textarea>" in html
    response = post(
        admin_client,
        flow,
        hook,
        {
            "url": "https://crm.example.com/v2",
            "method": "PUT",
            "headers": "X-Key: k2\nX-Trace:  on ",
            "body": '{"email": "{{email}}"}',
        },
    )
    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.config == {
        "url": "https://crm.example.com/v2",
        "method": "PUT",
        "headers": {"X-Key": "k2", "X-Trace": "on"},
        "body": {"email": "{{email}}"},
    }
    response = post(admin_client, flow, hook, {"url": "ftp://x", "method": "GET", "headers": ""})
    assert response.context["form"].errors["url"] == ["Invalid url: an http:// or https:// URL"]
    response = post(
        admin_client,
        flow,
        hook,
        {"url": "https://x.example", "method": "GET", "headers": "no colon here"},
    )
    assert response.context["form"].errors["headers"] == ["Line 1 is not “Name: value”."]
    hook.refresh_from_db()
    assert hook.config["method"] == "PUT"


def test_update_contact_needs_something_to_do(admin_client, flow):
    update = step(flow, "UPDATE_CONTACT")
    response = post(admin_client, flow, update, {"updates": "", "subscription_action": "none"})
    assert response.context["form"].non_field_errors() == [
        "Provide at least one field to update or a subscription action"
    ]
    post(admin_client, flow, update, {"updates": "", "subscription_action": "unsubscribe"})
    update.refresh_from_db()
    assert update.config == {"subscriptionAction": "unsubscribe"}


def test_condition_field_operator_and_typed_value(admin_client, flow):
    condition = step(flow, "CONDITION")
    response = admin_client.get(step_url(flow, condition))
    assert response.context["form"].initial["value_type"] == "number"
    post(
        admin_client,
        flow,
        condition,
        {"field": "data.plan", "operator": "equals", "value": "pro", "value_type": "text"},
    )
    condition.refresh_from_db()
    assert condition.config == {"field": "data.plan", "operator": "equals", "value": "pro"}
    response = post(
        admin_client,
        flow,
        condition,
        {"field": "plan", "operator": "equals", "value": "1", "value_type": "number"},
    )
    assert "never resolves" in response.context["form"].errors["field"][0]
    response = post(
        admin_client,
        flow,
        condition,
        {"field": "data.n", "operator": "equals", "value": "many", "value_type": "number"},
    )
    assert response.context["form"].errors["value"] == ["Enter a number, or choose Text."]
    post(
        admin_client,
        flow,
        condition,
        {"field": "data.vip", "operator": "equals", "value": "true", "value_type": "boolean"},
    )
    condition.refresh_from_db()
    assert condition.config["value"] is True


def test_multi_branch_conditions_are_edited_as_json(admin_client, project):
    workflow = workflows.create_workflow(
        project,
        name="Branches",
        event_name="signup",
        steps=[
            {
                "type": "CONDITION",
                "name": "Plan",
                "config": {
                    "mode": "multi",
                    "field": "data.plan",
                    "branches": [{"id": "pro", "name": "Pro", "operator": "equals", "value": 1}],
                },
            }
        ],
    )
    condition = step(workflow, "CONDITION")
    response = admin_client.get(step_url(workflow, condition))
    assert list(response.context["form"].fields) == ["name", "config"]
    response = post(admin_client, workflow, condition, {"config": '{"mode": "multi"}'})
    assert any("config.field" in e for e in response.context["form"].errors["config"])


def test_exit_reason(admin_client, flow):
    exit_step = step(flow, "EXIT")
    post(admin_client, flow, exit_step, {"reason": ""})
    exit_step.refresh_from_db()
    assert exit_step.config == {}


def test_send_email_offers_the_projects_templates(admin_client, flow, project, other_project):
    mine = templates.create_template(
        project, name="Thanks", subject="Thanks", body="<p>Hi</p>", from_email="a@example.com"
    )
    templates.create_template(
        other_project, name="Theirs", subject="x", body="x", from_email="b@example.com"
    )
    send = step(flow, "SEND_EMAIL")
    form = admin_client.get(step_url(flow, send)).context["form"]
    assert [label for _, label in form.fields["template"].choices][1:] == ["Thanks (Marketing)"]
    response = post(
        admin_client,
        flow,
        send,
        {"template": str(mine.pk), "recipient_type": "CUSTOM", "custom_email": "ops@example.com"},
    )
    assert response.status_code == 302
    send.refresh_from_db()
    assert send.config == {
        "templateId": str(mine.pk),
        "recipient": {"type": "CUSTOM", "customEmail": "ops@example.com"},
    }
    response = post(
        admin_client,
        flow,
        send,
        {"template": str(mine.pk), "recipient_type": "CUSTOM", "custom_email": "not an address"},
    )
    assert response.context["form"].errors["custom_email"]  # the service's email rule
    send.refresh_from_db()
    assert send.config["recipient"]["customEmail"] == "ops@example.com"
    post(admin_client, flow, send, {"template": str(mine.pk), "recipient_type": "CONTACT"})
    send.refresh_from_db()
    assert send.config == {"templateId": str(mine.pk)}
    # The workflow page names the template and the recipient in words.
    html = admin_client.get(
        reverse("admin:plunk_events_workflow_change", args=[flow.pk])
    ).content.decode()
    assert "<dt>Email template</dt><dd>Thanks</dd>" in html
    assert "<dt>Send to</dt><dd>The contact of the run</dd>" in html
    assert "<dt>If</dt><dd>data.total is greater than 100</dd>" in html


def test_config_changes_wait_for_active_runs_but_a_rename_does_not(admin_client, flow, project):
    workflows.update_workflow(project, flow.pk, enabled=True)
    contact = Contact.objects.create(project=project, email="ada@example.com")
    executions.start_execution(project, flow.pk, contact.pk)
    delay = step(flow, "DELAY")
    response = post(admin_client, flow, delay, {"amount": "5", "unit": "hours"})
    assert "Disable it first" in response.context["form"].non_field_errors()[0]
    response = admin_client.post(
        step_url(flow, delay), {"name": "Short pause", "amount": "1", "unit": "hours"}
    )
    assert response.status_code == 302
    delay.refresh_from_db()
    assert (delay.name, delay.config) == ("Short pause", {"amount": 1, "unit": "hours"})


def test_without_change_permission_the_forms_are_refused(staff_client, flow):
    viewer = staff_client("view_workflow")
    page = viewer.get(reverse("admin:plunk_events_workflow_change", args=[flow.pk]))
    assert page.status_code == 200
    assert "Change settings" not in page.content.decode()
    delay = step(flow, "DELAY")
    assert viewer.get(step_url(flow, delay)).status_code == 403
    response = viewer.post(step_url(flow, delay), {"name": "x", "amount": "9", "unit": "days"})
    assert response.status_code == 403
    delay.refresh_from_db()
    assert delay.config == {"amount": 1, "unit": "hours"}
    editor = staff_client("view_workflow", "change_workflow")
    assert editor.get(step_url(flow, delay)).status_code == 200


def test_a_step_of_another_workflow_is_not_found(admin_client, flow, other_project):
    other = workflows.create_workflow(
        other_project,
        name="Other",
        event_name="x",
        steps=[{"type": "EXIT", "name": "Out", "config": {}}],
    )
    foreign = step(other, "EXIT")
    url = reverse("admin:plunk_events_workflow_step", args=[flow.pk, foreign.pk])
    assert admin_client.get(url).status_code == 404
    assert Project.objects.count() == 2


def test_service_errors_land_on_the_field_of_the_longest_matching_key(flow):
    from plunk_events.admin.step_forms import SendEmailForm

    form = SendEmailForm({"name": "x", "recipient_type": "CONTACT"}, step=step(flow, "SEND_EMAIL"))
    assert form.is_valid()
    form.add_service_errors(
        [
            {"field": "config.recipient.type", "message": "bad type"},
            {"field": "config.recipient.customEmail", "message": "bad address"},
            {"field": "config.templateId", "message": "no such template"},
            {"field": "config", "message": "whole config"},
            {"field": "config.other", "message": "unknown key"},
        ]
    )
    assert form.errors == {
        "recipient_type": ["bad type"],
        "custom_email": ["bad address"],
        "template": ["no such template"],
        "__all__": ["whole config", "config.other: unknown key"],
    }


def test_a_stored_template_id_that_is_not_a_template_reads_plainly(admin_client, flow):
    send = step(flow, "SEND_EMAIL")
    WorkflowStep.objects.filter(pk=send.pk).update(config={"templateId": "not-a-uuid"})
    page = admin_client.get(reverse("admin:plunk_events_workflow_change", args=[flow.pk]))
    assert page.status_code == 200
    assert (
        "<dt>Email template</dt><dd>A template that no longer exists</dd>" in page.content.decode()
    )
    form = admin_client.get(step_url(flow, send)).context["form"]
    assert form.fields["template"].choices[-1][0] == "not-a-uuid"
