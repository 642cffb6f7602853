"""Issue 13 in a real browser at 1280 px: every changelist fits (no horizontal overflow of the
results table), the statistics and name pages read plainly, a contact is edited, and a
project's keys are regenerated from its page. Screenshots go to ``test-artifacts/screenshots/``
(``21-…`` onwards)."""

from __future__ import annotations

import pytest

from plunk_events.constants import CONTACT_UNSUBSCRIBED
from plunk_events.models import Contact, Event
from tests.browser.test_admin_browser import login, site  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHANGELISTS = ("event", "contact", "segment", "workflow", "project")

#: Horizontal overflow of the results table: how far it runs past its container or the window.
OVERFLOW_JS = """() => {
  const table = document.querySelector('#result_list');
  const wrap = table.closest('.results') || table.parentElement;
  const view = document.documentElement.clientWidth;
  return {
    table: table.scrollWidth - wrap.clientWidth,
    right: Math.ceil(table.getBoundingClientRect().right) - view,
    page: document.documentElement.scrollWidth - view,
  };
}"""


def test_every_changelist_fits_at_1280(page, site, screenshot):  # noqa: F811
    login(page, site)
    for i, model in enumerate(CHANGELISTS):
        page.goto(f"{site['url']}/admin/plunk_events/{model}/")
        page.wait_for_selector("#result_list")
        overflow = page.evaluate(OVERFLOW_JS)
        screenshot(f"2{i}-changelist-{model}-1280")
        assert overflow["table"] <= 0, (model, overflow)
        assert overflow["right"] <= 0, (model, overflow)
        assert overflow["page"] <= 0, (model, overflow)
        headers = page.locator("#result_list thead th").all_inner_texts()
        assert not any(h.strip().lower() == "project" for h in headers) or model in (
            "segment",
            "workflow",
        ), (model, headers)


def test_stats_and_name_pages_read_plainly(page, site, screenshot):  # noqa: F811
    login(page, site)
    page.goto(f"{site['url']}/admin/plunk_events/event/stats/?project={site['project'].pk}")
    page.wait_for_selector("#plunk-names")
    text = page.locator("#content").inner_text()
    assert "GET /events" not in text and "(s)" not in text
    assert "0.0%" not in text
    system = page.locator("#plunk-names tbody tr", has_text="email.open").locator("td").nth(5)
    assert system.inner_text().strip() == "System"
    colour = page.locator(".plunk-legend li", has_text="email.open").locator(".plunk-swatch")
    first = colour.get_attribute("style")
    screenshot("25-stats-plain-wording")
    page.click(".plunk-windows >> text=7 days")
    page.wait_for_selector("#plunk-names")
    again = page.locator(".plunk-legend li", has_text="email.open").locator(".plunk-swatch")
    assert again.get_attribute("style") == first  # the colour follows the name
    assert "today so far" in page.locator("#content").inner_text()

    # A system name: its delete button is disabled, with the reason.
    page.click("#plunk-names tbody >> text=email.open")
    page.wait_for_selector(".plunk-name-detail")
    assert page.locator(".plunk-delete-row .deletelink").count() == 0
    assert "Plunk records this event itself" in page.locator("#plunk-delete-reason").inner_text()
    screenshot("26-name-page-system-event")

    # An unknown name is a 404.
    response = page.goto(
        f"{site['url']}/admin/plunk_events/event/stats/{site['project'].pk}/no-such-name/"
    )
    assert response.status == 404

    # The changelist's name cell opens the name's page.
    page.goto(f"{site['url']}/admin/plunk_events/event/?project={site['project'].pk}")
    page.locator("#result_list td.field-name a").first.click()
    page.wait_for_selector(".plunk-name-detail")
    screenshot("27-name-page-from-changelist")


def test_contact_edit_and_project_keys(page, site, screenshot):  # noqa: F811
    login(page, site)
    contact = Contact.objects.filter(project=site["project"], subscribed=True).first()
    page.goto(f"{site['url']}/admin/plunk_events/contact/{contact.pk}/change/")
    page.wait_for_selector("#contact_form")
    screenshot("28-contact-edit")
    page.uncheck("#id_subscribed")
    page.fill("#id_data", '{"plan": "pro", "firstName": "Ada"}')
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    contact.refresh_from_db()
    assert not contact.subscribed and contact.data == {"plan": "pro", "firstName": "Ada"}
    assert Event.objects.filter(contact=contact, name=CONTACT_UNSUBSCRIBED).exists()

    page.goto(f"{site['url']}/admin/plunk_events/project/{site['project'].pk}/change/")
    page.wait_for_selector("#plunk-regenerate-keys")
    assert site["project"].public_key in page.locator("#content").inner_text()
    screenshot("29-project-page")
    page.click("#plunk-regenerate-keys")
    page.click("input[value='Yes, regenerate the keys']")
    page.wait_for_selector("code.plunk-key")
    screenshot("30-project-new-keys")


def test_workflow_run_and_segment_pages(page, site, screenshot):  # noqa: F811
    from plunk_events.services import automation, executions, workflow_runtime, workflows
    from plunk_events.workflow_models import WorkflowExecution

    project, workflow = site["project"], site["workflow"]
    workflows.update_workflow(project, workflow.pk, enabled=True)
    contact = Contact.objects.filter(project=project).first()
    run = executions.start_execution(project, workflow.pk, contact.pk)
    workflow_runtime.advance(run.pk, run.current_step_id)
    login(page, site)

    page.goto(f"{site['url']}/admin/plunk_events/workflow/{workflow.pk}/change/")
    page.wait_for_selector(".plunk-graph")
    graph = page.locator(".plunk-graph").inner_text()
    assert "Give up after" in graph and "1 day" in graph and "86400" not in graph
    assert "when the event arrives" in graph
    screenshot("34-workflow-graph", full_page=True)

    page.click("text=All runs")
    page.wait_for_selector("#result_list")
    assert page.evaluate(OVERFLOW_JS)["table"] <= 0
    screenshot("35-workflow-runs")
    page.locator("#result_list tbody th a, #result_list tbody td a").first.click()
    page.wait_for_selector(".plunk-step-timeline")
    screenshot("36-workflow-run-timeline")
    page.click("#plunk-cancel-run")
    page.wait_for_selector("ul.messagelist")
    assert WorkflowExecution.objects.get(pk=run.pk).status == "CANCELLED"
    screenshot("37-workflow-run-cancelled")

    static = automation.create_segment(project, name="Beta testers", type="STATIC")
    page.goto(f"{site['url']}/admin/plunk_events/segment/{static.pk}/change/")
    page.wait_for_selector("#plunk-member-emails")
    assert page.locator("#plunk-builder").is_hidden()  # no condition for a STATIC segment
    assert page.locator("#plunk-static-note").is_visible()
    page.fill("#plunk-member-emails", f"{contact.email}\nnobody@example.com")
    page.click("#plunk-add-members")
    page.wait_for_selector("ul.messagelist")
    assert "Added 1 of 2." in page.locator("ul.messagelist").inner_text()
    assert contact.email in page.locator("#content").inner_text()
    screenshot("38-static-segment-members", full_page=True)
    page.goto(f"{site['url']}/admin/plunk_events/segment/{site['segment'].pk}/change/")
    page.wait_for_selector("#plunk-builder")
    page.wait_for_function(
        "document.getElementById('plunk-builder-preview').textContent.includes('Would match')"
    )
    screenshot("39-dynamic-segment-page", full_page=True)


def test_view_only_staff_see_no_new_actions(page, site, screenshot):  # noqa: F811
    """Each new action needs its model's change permission: a view-only user gets none."""
    from django.contrib.auth.models import Permission, User

    from plunk_events.services import automation, executions, workflows

    project, workflow = site["project"], site["workflow"]
    workflows.update_workflow(project, workflow.pk, enabled=True)
    contact = Contact.objects.filter(project=project).first()
    run = executions.start_execution(project, workflow.pk, contact.pk)
    static = automation.create_segment(project, name="Beta testers", type="STATIC")
    viewer = User.objects.create_user("viewer", password="viewer", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="plunk_events", codename__startswith="view_"
        )
    )
    page.goto(site["url"] + "/admin/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "viewer")
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")
    checks = {
        f"/admin/plunk_events/workflowexecution/{run.pk}/change/": "#plunk-cancel-run",
        f"/admin/plunk_events/contact/{contact.pk}/change/": "input[name=_save]",
        f"/admin/plunk_events/project/{project.pk}/change/": "#plunk-regenerate-keys",
        f"/admin/plunk_events/segment/{static.pk}/change/": "#plunk-add-members",
    }
    for path, selector in checks.items():
        response = page.goto(site["url"] + path)
        assert response.status == 200, path
        assert page.locator(selector).count() == 0, path
    screenshot("40-view-only-run-page")
    # The endpoints refuse a forged request too.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    cancel = page.request.post(
        f"{site['url']}/admin/plunk_events/workflowexecution/{run.pk}/cancel/",
        headers={"X-CSRFToken": token, "Referer": site["url"] + "/admin/"},
    )
    assert cancel.status == 403 and "CSRF" not in cancel.text()  # refused for the permission
