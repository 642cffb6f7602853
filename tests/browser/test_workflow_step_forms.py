"""Issue 13 in a real browser at 1280 px: a workflow step's settings edited as a form with units
(the wait's timeout shown as "1 days", saved as seconds), the service's error shown on the
field, and no form for a user without the change permission. Screenshots ``45-…`` to ``47-…``."""

from __future__ import annotations

import pytest

from plunk_events.models import WorkflowStep
from tests.browser.test_admin_browser import login, site  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: How far the page runs past the 1280 px window (0 when it fits).
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_a_wait_step_is_edited_with_units(page, site, screenshot):  # noqa: F811
    workflow = site["workflow"]
    wait = workflow.steps.get(type=WorkflowStep.Type.WAIT_FOR_EVENT)
    login(page, site)
    page.goto(f"{site['url']}/admin/plunk_events/workflow/{workflow.pk}/change/")
    page.click(f"#step-{wait.pk} a.plunk-step-edit")
    page.wait_for_selector("#plunk-step-form")
    assert page.input_value("#id_timeout_amount") == "1"
    assert page.input_value("#id_timeout_unit") == "days"
    assert "86400" not in page.locator("#content").inner_text()
    assert page.evaluate(OVERFLOW_JS) <= 0
    screenshot("45-workflow-step-form")

    # Out of range: the workflow service's message, on the timeout field; nothing saved.
    page.fill("#id_timeout_amount", "400")
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    error = page.locator(".field-timeout_amount .errorlist, .errorlist").first.inner_text()
    assert "Timeout must be between 1 and 31536000 seconds" in error
    wait.refresh_from_db()
    assert wait.config["timeout"] == 86400
    screenshot("46-workflow-step-form-error")

    page.fill("#id_timeout_amount", "3")
    page.select_option("#id_timeout_unit", "days")
    page.fill("#id_name", "Wait three days for a review")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    assert "was changed" in page.locator("ul.messagelist").inner_text()
    graph = page.locator(".plunk-graph").inner_text()
    assert "3 days" in graph and "Wait three days for a review" in graph
    wait.refresh_from_db()
    assert (wait.name, wait.config["timeout"]) == ("Wait three days for a review", 259_200)
    screenshot("47-workflow-step-saved", full_page=True)


def test_a_viewer_gets_no_step_form(page, site):  # noqa: F811
    from django.contrib.auth.models import Permission, User

    workflow = site["workflow"]
    wait = workflow.steps.get(type=WorkflowStep.Type.WAIT_FOR_EVENT)
    viewer = User.objects.create_user("viewer", password="viewer", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(content_type__app_label="plunk_events", codename="view_workflow")
    )
    page.goto(site["url"] + "/admin/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "viewer")
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")
    page.goto(f"{site['url']}/admin/plunk_events/workflow/{workflow.pk}/change/")
    page.wait_for_selector(".plunk-graph")
    assert page.locator("a.plunk-step-edit").count() == 0
    response = page.goto(
        f"{site['url']}/admin/plunk_events/workflow/{workflow.pk}/steps/{wait.pk}/"
    )
    assert response.status == 403
