"""The admin in a real browser: log in, browse and filter events, read the statistics, and run
the guarded bulk delete on one deletable and one referenced name."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from plunk_events.models import Event, hash_key
from plunk_events.services import automation, workflows
from plunk_events.services.projects import create_project
from tests.admin.conftest import seed_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMES = {
    "pageview": 400,
    "signup": 120,
    "purchase": 60,
    "newsletter.click": 30,
    "email.open": 90,
    "contact.unsubscribed": 8,
}


@pytest.fixture
def site(live_server):
    project = create_project("Acme")
    create_project("Beta")
    seed_events(project, NAMES, days=45, contacts=60)
    segment = automation.create_segment(
        project,
        name="Signed up",
        condition={
            "logic": "AND",
            "groups": [
                {
                    "filters": [
                        {
                            "field": "event.signup",
                            "operator": "triggeredWithin",
                            "value": 30,
                            "unit": "days",
                        }
                    ]
                }
            ],
        },
    )
    workflow = workflows.create_workflow(
        project,
        name="Thank buyers",
        event_name="purchase",
        steps=[
            {
                "type": "WAIT_FOR_EVENT",
                "name": "Wait for a review",
                "config": {"eventName": "review", "timeout": 86400},
            },
            {"type": "SEND_EMAIL", "name": "Say thanks", "config": {"template": "thanks"}},
        ],
    )
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    return {"url": live_server.url, "project": project, "segment": segment, "workflow": workflow}


def login(page, site, screenshot=None):
    page.goto(site["url"] + "/admin/")
    if screenshot:
        screenshot("01-login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")


def test_browse_filter_and_stats(page, site, screenshot):
    login(page, site, screenshot)
    assert page.locator("a", has_text="Event statistics").count() == 1
    screenshot("02-admin-index")

    page.click("#content-main a:text-is('Events')")
    page.wait_for_selector("#result_list")
    assert re.search(r"project=", page.url)
    screenshot("03-event-changelist")

    # Filter by name (the filter lists the most frequent names with their counts).
    page.click("#changelist-filter >> text=signup (120)")
    page.wait_for_selector("#result_list")
    names = page.locator("#result_list tbody td.field-name, #result_list tbody th.field-name")
    assert names.count() == 100
    assert set(names.all_inner_texts()) == {"signup"}
    assert "120 events" in page.locator(".paginator").inner_text()
    screenshot("04-event-changelist-filtered")

    # Search by exact contact email (or the start of a name).
    page.fill("#searchbar", "user0@example.com")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    emails = page.locator("#result_list tbody td.field-contact_link").all_inner_texts()
    assert emails and set(emails) == {"user0@example.com"}

    # One event's read-only page with its data pretty-printed.
    page.locator("#result_list tbody th.field-created_at a").first.click()
    page.wait_for_selector("pre.plunk-json")
    assert '"plan":' in page.locator("pre.plunk-json").inner_text()
    assert page.locator("input[name=_save]").count() == 0
    screenshot("05-event-detail")

    # The statistics page, linked from the changelist.
    page.goto(site["url"] + "/admin/plunk_events/event/")
    page.click(".object-tools >> text=Statistics")
    page.wait_for_selector("#plunk-names")
    rows = page.locator("#plunk-names tbody tr")
    assert rows.count() == len(NAMES)
    first_row = rows.first.inner_text()
    assert first_row.startswith("pageview")
    assert page.locator("svg.plunk-chart rect title").count() > 10
    assert "Segment: Signed up" in page.locator("#plunk-names").inner_text()
    screenshot("06-stats-30-days")
    screenshot("06-stats-30-days-full", full_page=True)

    page.click(".plunk-windows >> text=All time")
    page.wait_for_selector("#plunk-names")
    assert "708 events" in page.locator(".plunk-summary").inner_text()
    page.click("#plunk-names thead >> text=Event name")
    page.wait_for_selector("#plunk-names")
    assert (
        page.locator("#plunk-names tbody tr").first.inner_text().startswith("contact.unsubscribed")
    )
    page.select_option("#plunk-chart-name", "signup")
    page.click(".plunk-chart-filter input[type=submit]")
    page.wait_for_selector("svg.plunk-chart")
    assert "Daily events of “signup”" in page.locator("svg.plunk-chart > title").text_content()
    screenshot("07-stats-all-time-signup-chart")

    # One name's page.
    page.click("#plunk-names tbody >> text=purchase")
    page.wait_for_selector(".plunk-name-detail")
    body = page.locator("#content-main").inner_text()
    assert "Workflow Thank buyers" in body
    assert "Top contacts" in body
    screenshot("08-name-detail-purchase")
    screenshot("08-name-detail-purchase-full", full_page=True)


def test_bulk_delete_deletable_and_referenced(page, site, screenshot):
    project = site["project"]
    login(page, site)
    page.goto(site["url"] + f"/admin/plunk_events/event/?project={project.pk}")
    page.wait_for_selector("#result_list")
    # Select one "pageview" and one "signup" event on the unfiltered page.
    for name in ("pageview", "signup"):
        cell = page.locator("td.field-name", has_text=re.compile(f"^{re.escape(name)}$"))
        page.locator("#result_list tbody tr").filter(has=cell).first.locator(
            "input.action-select"
        ).check()
    page.select_option("select[name=action]", "delete_events_with_selected_names")
    page.click("button[name=index]")
    page.wait_for_selector(".plunk-confirm")
    text = page.locator(".plunk-confirm").inner_text()
    assert "400 events will be deleted" in text
    assert "Not deleted" in text and "Signed up" in text
    screenshot("09-delete-by-name-confirmation")

    page.click("input[type=submit][value^='Yes, delete']")
    page.wait_for_selector("ul.messagelist")
    messages = page.locator("ul.messagelist").inner_text()
    assert "Deleted 400 “pageview” events" in messages
    assert "“signup” was not deleted" in messages
    screenshot("10-after-bulk-delete")
    assert not Event.objects.filter(project=project, name="pageview").exists()
    assert Event.objects.filter(project=project, name="signup").count() == 120

    # The name page's delete button, through the same confirmation page.
    page.goto(site["url"] + "/admin/plunk_events/event/stats/")
    page.click("#plunk-names tbody >> text=newsletter.click")
    page.wait_for_selector(".plunk-delete-row")
    page.click(".plunk-delete-row .deletelink")
    page.wait_for_selector(".plunk-confirm")
    screenshot("11-name-delete-confirmation")
    page.click("input[type=submit][value^='Yes, delete']")
    page.wait_for_selector("ul.messagelist")
    assert "Deleted 30 “newsletter.click” events" in page.locator("ul.messagelist").inner_text()
    assert not Event.objects.filter(project=project, name="newsletter.click").exists()
    screenshot("12-stats-after-name-delete")


def test_other_admin_pages(page, site, screenshot):
    login(page, site)
    page.goto(site["url"] + "/admin/plunk_events/contact/")
    page.wait_for_selector("#result_list")
    screenshot("13-contact-changelist")
    page.locator("#result_list tbody th a").first.click()
    page.wait_for_selector(".plunk-timeline")
    contact_id = page.url.split("/contact/")[1].split("/")[0]
    expected = min(20, Event.objects.filter(contact_id=contact_id).count())
    assert page.locator(".plunk-timeline tbody tr").count() == expected
    screenshot("14-contact-detail")
    screenshot("14-contact-detail-full", full_page=True)
    page.goto(site["url"] + f"/admin/plunk_events/segment/{site['segment'].pk}/change/")
    page.wait_for_selector("#segment_form")
    screenshot("15-segment-change")
    page.goto(site["url"] + f"/admin/plunk_events/workflow/{site['workflow'].pk}/change/")
    page.wait_for_selector("#workflow_form")
    screenshot("16-workflow-change")
    screenshot("16-workflow-change-full", full_page=True)
    page.goto(site["url"] + "/admin/plunk_events/project/")
    page.wait_for_selector("#result_list")
    listed = page.locator("#result_list").inner_text()
    assert f"{site['project'].secret_key[:7]}…" in listed and site["project"].public_key in listed
    assert site["project"].secret_key not in page.content()
    screenshot("17-project-changelist")

    # Regenerate the keys of one project: a confirmation page, then the new keys once.
    old_key = site["project"].secret_key
    page.locator("#result_list tbody tr", has_text="Acme").locator("input.action-select").check()
    page.select_option("select[name=action]", "regenerate_project_keys")
    page.click("button[name=index]")
    page.wait_for_selector("input[value='Yes, regenerate the keys']")
    screenshot("18-regenerate-keys-confirmation")
    page.click("input[value='Yes, regenerate the keys']")
    page.wait_for_selector("code.plunk-key")
    shown = page.locator("code.plunk-key", has_text="sk_").inner_text()
    site["project"].refresh_from_db()
    assert shown != old_key and site["project"].secret_key_hash == hash_key(shown)
    screenshot("19-new-keys")
