"""The email admin in a real browser at 1280 px: the template and email changelists fit (no
horizontal overflow), a template's preview renders a contact's data in a sandboxed frame where
the template's script does not run, and an email's page shows its body and events.
Screenshots ``70-…`` to ``74-…`` go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from plunk_events.models import Contact, Email, Event
from plunk_events.services import templates
from plunk_events.services.projects import create_project
from tests.browser.test_marketer_pages import OVERFLOW_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BODY = (
    "<h1>Hello {{firstName}}</h1><p>Your plan: <strong>{{plan ?? 'free'}}</strong></p>"
    '<p id="ran">script did not run</p>'
    "<script>document.getElementById('ran').textContent = 'script ran';"
    "parent.document.title = 'pwned';</script>"
)


@pytest.fixture
def email_site(live_server):
    project = create_project("Acme")
    create_project("Beta")
    welcome = templates.create_template(
        project,
        name="Welcome series, first message of the onboarding sequence",
        subject="Welcome aboard, {{firstName}}! Here is everything you need to get started today",
        body=BODY,
        from_email="onboarding-team@notifications.example-company.com",
        from_name="Acme onboarding",
    )
    templates.create_template(
        project,
        name="Receipt",
        type="TRANSACTIONAL",
        body_format="MARKDOWN",
        subject="Your receipt #{{orderId}}",
        body="# Thanks {{firstName}}\n\n* Order {{orderId}}",
        from_email="billing@example.com",
    )
    ann = Contact.objects.create(
        project=project,
        email="ann.very-long-address-for-layout@subdomain.example-company.com",
        data={"firstName": "Ann <b>bold</b>", "plan": "pro"},
    )
    now = timezone.now()
    emails = []
    opened = {Email.Status.OPENED, Email.Status.CLICKED}
    for i in range(30):
        status = list(Email.Status)[i % len(Email.Status)]
        sent = now - timedelta(hours=i)
        reached = status not in (Email.Status.PENDING, Email.Status.FAILED)
        emails.append(
            Email(
                project=project,
                contact=ann,
                template=welcome,
                source=Email.Source.WORKFLOW if i % 2 else Email.Source.TRANSACTIONAL,
                to_email=ann.email,
                from_email=welcome.from_email,
                subject=f"Welcome aboard, Ann! Here is everything you need to get started #{i}",
                body=f"<h1>Hello Ann</h1><p>Message {i}</p>",
                status=status,
                created_at=sent - timedelta(minutes=1),
                sent_at=sent if reached else None,
                delivered_at=sent if reached and status != Email.Status.SENT else None,
                opened_at=sent + timedelta(minutes=20) if status in opened else None,
                clicked_at=sent + timedelta(minutes=25) if status == Email.Status.CLICKED else None,
                bounced_at=sent if status == Email.Status.BOUNCED else None,
                opens=1 + i % 4 if status in opened else 0,
                clicks=1 + i % 2 if status == Email.Status.CLICKED else 0,
            )
        )
    Email.objects.bulk_create(emails)
    first = Email.objects.filter(project=project).order_by("created_at").first()
    for name in ("email.sent", "email.delivery", "email.open"):
        Event.objects.create(
            project=project, contact=ann, name=name, email_id=first.pk, data={"emailId": "…"}
        )
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    return {"url": live_server.url, "project": project, "template": welcome, "email": first}


def login(page, site):
    page.goto(site["url"] + "/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")


def assert_fits(page, what):
    overflow = page.evaluate(OVERFLOW_JS)
    assert overflow["table"] <= 0, (what, overflow)
    assert overflow["right"] <= 0, (what, overflow)
    assert overflow["page"] <= 0, (what, overflow)


def test_template_pages_and_preview(page, email_site, screenshot):
    site = email_site
    login(page, site)
    page.goto(f"{site['url']}/admin/plunk_events/template/")
    page.wait_for_selector("#result_list")
    assert "project=" in page.url
    screenshot("70-changelist-template-1280")
    assert_fits(page, "template")
    headers = [h.strip() for h in page.locator("#result_list thead th").all_inner_texts()]
    assert {"NAME", "TYPE", "SUBJECT", "FROM", "UPDATED"} <= {h.upper() for h in headers}

    page.click("#result_list a:text-is('Receipt')")
    page.wait_for_selector("#template_form")
    screenshot("71-template-change")
    page.goto(f"{site['url']}/admin/plunk_events/template/{site['template'].pk}/change/")
    page.click(".object-tools >> text=Preview")
    page.wait_for_selector("#plunk-preview")
    page.fill("#id_contact", "ANN.very-long-address-for-layout@subdomain.example-company.com")
    page.fill("#id_data", '{"plan": "enterprise"}')
    page.click("#plunk-preview-form input[type=submit]")
    page.wait_for_selector("#plunk-preview-contact a")
    subject = page.locator("#plunk-preview-subject").inner_text()
    assert subject.startswith("Welcome aboard, Ann <b>bold</b>!")
    frame = page.frame_locator("iframe.plunk-email-frame")
    assert frame.locator("h1").inner_text() == "Hello Ann <b>bold</b>"  # text, not markup
    assert frame.locator("strong").inner_text() == "enterprise"
    assert frame.locator("#ran").inner_text() == "script did not run"
    assert page.title() != "pwned"
    assert page.locator("iframe.plunk-email-frame").get_attribute("sandbox") == ""
    screenshot("72-template-preview", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_email_changelist_and_page(page, email_site, screenshot):
    site = email_site
    login(page, site)
    page.goto(f"{site['url']}/admin/plunk_events/email/")
    page.wait_for_selector("#result_list")
    assert "project=" in page.url
    screenshot("73-changelist-email-1280")
    assert_fits(page, "email")
    assert page.locator("#result_list tbody tr").count() == 30
    assert page.locator(".xfull a, .date-hierarchy a, nav.toplinks a").count() >= 1
    page.click("#changelist-filter >> text=Clicked")
    page.wait_for_selector("#result_list")
    cells = page.locator("#result_list tbody td.field-state").all_inner_texts()
    assert cells and {cell.splitlines()[0] for cell in cells} == {"Clicked"}
    activity = page.locator("#result_list tbody td.field-activity").first.inner_text()
    assert "Clicked" in activity and "Opened" in activity
    assert page.locator("a.addlink[href$='/email/add/']").count() == 0

    page.goto(f"{site['url']}/admin/plunk_events/email/{site['email'].pk}/change/")
    page.wait_for_selector("table.plunk-email-events")
    names = page.locator("table.plunk-email-events tbody td:nth-child(2)").all_inner_texts()
    assert names == ["email.sent", "email.delivery", "email.open"]
    frame = page.frame_locator("iframe.plunk-email-frame")
    assert frame.locator("h1").inner_text() == "Hello Ann"
    assert page.locator("input[name=_save]").count() == 0
    # Scrolled to the body: a full-page capture leaves frames below the first screen blank.
    page.locator("iframe.plunk-email-frame").scroll_into_view_if_needed()
    screenshot("74-email-detail")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
