"""The subscription pages in a real browser (issue 11): the unsubscribe link from an email is
opened, its button clicked, and the confirmation read; the manage page in dark mode on a phone.
Screenshots ``60-…`` to ``62-…`` go to ``test-artifacts/screenshots/``."""

from __future__ import annotations

import pytest

from plunk_events.constants import CONTACT_UNSUBSCRIBED
from plunk_events.models import Contact, Event
from plunk_events.services.contacts import upsert_contact
from plunk_events.services.email_links import links
from plunk_events.services.projects import create_project
from tests.browser.conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def contact_links(live_server, settings):
    settings.PLUNK_EVENTS = {"PUBLIC_URL": live_server.url}
    project = create_project("Acme")
    contact = Contact.objects.get(pk=upsert_contact(project, "ada@example.com").id)
    return contact, links(contact)


def test_unsubscribe_from_the_link_then_subscribe_again(page, contact_links, screenshot):
    contact, urls = contact_links
    page.goto(urls["unsubscribeUrl"])
    assert page.locator("h1").inner_text() == "Unsubscribe from our emails?"
    assert "ada@example.com" in page.locator("main").inner_text()
    screenshot("60-email-unsubscribe-confirm")
    contact.refresh_from_db()
    assert contact.subscribed is True  # opening the link changed nothing

    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You are unsubscribed")
    assert page.get_by_role("status").inner_text().startswith("ada@example.com")
    screenshot("61-email-unsubscribed")
    contact.refresh_from_db()
    assert contact.subscribed is False
    events = Event.objects.filter(contact_id=contact.pk, name=CONTACT_UNSUBSCRIBED)
    assert events.count() == 1

    page.get_by_role("button", name="Subscribe again").click()
    page.wait_for_selector("text=You are subscribed")
    contact.refresh_from_db()
    assert contact.subscribed is True
    assert page.context.cookies() == []  # the pages set no cookie


def test_manage_page_in_dark_mode_on_a_phone(browser, contact_links):
    _, urls = contact_links
    context = browser.new_context(viewport={"width": 375, "height": 700}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(urls["manageUrl"])
        assert "receives our marketing emails" in page.locator("main").inner_text()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"  # the dark palette, not white
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Unsubscribe"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "62-email-manage-dark-375.png"))
    finally:
        context.close()
