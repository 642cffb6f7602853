"""Issue 13 items the other browser tests left out: the unfiltered Workflow executions changelist
fits 1280 px (the three overflow measures, as every other changelist), the non-changelist pages
do not scroll sideways either, and conditions whose values are easy to mistype (a number as
text, zero, booleans, dates, minutes, a count without window) survive the builder unchanged.
Screenshots ``80-…`` go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import json

import pytest

from plunk_events.models import Contact
from tests.browser.test_admin_browser import login, site  # noqa: F401 (the fixture)
from tests.browser.test_condition_builder import one, open_add_page
from tests.browser.test_marketer_pages import OVERFLOW_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: How far the document runs past the window, for pages without a results table.
PAGE_OVERFLOW_JS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_workflow_executions_changelist_fits_at_1280(page, site, screenshot):  # noqa: F811
    from plunk_events.services import executions, workflows

    project = site["project"]
    workflow = workflows.create_workflow(
        project,
        name="Welcome series for trial accounts that signed up through the partner programme",
        event_name="signup",
        enabled=True,
        steps=[
            {
                "type": "DELAY",
                "name": "Give them a couple of days to look around the product first",
                "config": {"amount": 2, "unit": "days"},
            }
        ],
    )
    workflows.update_workflow(project, site["workflow"].pk, enabled=True)
    for i in range(12):
        contact = Contact.objects.create(
            project=project,
            email=f"someone.with-a-rather-long-address-{i}@subdomain.example-company.com",
        )
        chosen = workflow if i % 2 else site["workflow"]
        executions.start_execution(project, chosen.pk, contact.pk)
    login(page, site)
    page.goto(f"{site['url']}/admin/plunk_events/workflowexecution/")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 12
    screenshot("80-changelist-workflowexecution-1280")
    overflow = page.evaluate(OVERFLOW_JS)
    assert overflow["table"] <= 0, overflow
    assert overflow["right"] <= 0, overflow
    assert overflow["page"] <= 0, overflow
    headers = [h.strip().lower() for h in page.locator("#result_list thead th").all_inner_texts()]
    assert "project" not in headers


def test_the_other_pages_do_not_scroll_sideways_at_1280(page, site):  # noqa: F811
    project, segment, workflow = site["project"], site["segment"], site["workflow"]
    login(page, site)
    pages = {
        f"/admin/plunk_events/event/stats/?project={project.pk}": "#plunk-names",
        f"/admin/plunk_events/event/stats/{project.pk}/pageview/": ".plunk-name-detail",
        f"/admin/plunk_events/segment/{segment.pk}/change/": "#plunk-builder",
        f"/admin/plunk_events/workflow/{workflow.pk}/change/": ".plunk-graph",
        f"/admin/plunk_events/project/{project.pk}/change/": "#plunk-regenerate-keys",
        f"/admin/plunk_events/contact/{Contact.objects.first().pk}/change/": "#contact_form",
    }
    for path, selector in pages.items():
        page.goto(site["url"] + path)
        page.wait_for_selector(selector)
        assert page.evaluate(PAGE_OVERFLOW_JS) <= 0, path


def awkward_conditions() -> dict[str, dict]:
    return {
        "a number written as text": one({"field": "data.zip", "operator": "equals", "value": "3"}),
        "zero": one({"field": "data.seats", "operator": "equals", "value": 0}),
        "a boolean in data": one({"field": "data.vip", "operator": "notEquals", "value": True}),
        "not subscribed": one({"field": "subscribed", "operator": "equals", "value": False}),
        "a date": one(
            {"field": "createdAt", "operator": "greaterThan", "value": "2025-01-01T00:00:00Z"}
        ),
        "minutes": one(
            {"field": "updatedAt", "operator": "within", "value": 45, "unit": "minutes"}
        ),
        "a count without window": one(
            {"field": "event.login", "operator": "triggeredAtLeast", "value": 1}
        ),
        "an email never clicked": one({"field": "email.clicked", "operator": "notTriggered"}),
        "two filters and OR": {
            "logic": "OR",
            "groups": [
                {
                    "filters": [
                        {"field": "data.plan", "operator": "exists"},
                        {
                            "field": "event.signup",
                            "operator": "notTriggeredWithin",
                            "value": 14,
                            "unit": "days",
                        },
                    ]
                },
                {"filters": [{"field": "email", "operator": "notContains", "value": "+test"}]},
            ],
        },  # fmt: skip
    }


def test_awkward_values_round_trip_through_the_builder(page, site):  # noqa: F811
    login(page, site)
    open_add_page(page, site)
    for label, condition in awkward_conditions().items():
        page.click("#plunk-builder-toggle")  # to JSON
        page.fill("#id_condition", json.dumps(condition))
        page.click("#plunk-builder-toggle")  # back to the builder, which reads it
        page.evaluate("window.plunkConditionBuilder.changed()")
        assert json.loads(page.input_value("#id_condition")) == condition, label
