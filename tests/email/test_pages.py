"""The subscription pages of email links and the List-Unsubscribe headers (issue 11).

GET never changes anything (link scanners prefetch); a POST from the page's button or the
mailbox provider's RFC 8058 one-click POST (no cookie, no CSRF token) changes the subscription
through the contacts service, which records ``contact.unsubscribed``/``contact.subscribed``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.urls import reverse

from plunk_events.checks import check_settings
from plunk_events.constants import CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED
from plunk_events.models import Contact, Event
from plunk_events.services.contacts import delete_contact, upsert_contact
from plunk_events.services.email_links import (
    links,
    list_unsubscribe_headers,
    read_token,
    token_for,
)

pytestmark = pytest.mark.django_db

PUBLIC = {"PUBLIC_URL": "https://mail.example.com"}


def make_contact(project, email="ada@example.com", subscribed=True) -> Contact:
    return Contact.objects.get(pk=upsert_contact(project, email, {"plan": "pro"}, subscribed).id)


@pytest.fixture
def contact(project):
    return make_contact(project)


@pytest.fixture
def browser_like():
    """A client that enforces CSRF like the middleware does for a real browser."""
    return Client(enforce_csrf_checks=True)


def path(url: str) -> str:
    return urlsplit(url).path


def subscription_events(contact) -> list[str]:
    return list(
        Event.objects.filter(
            contact_id=contact.pk, name__in=[CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED]
        )
        .order_by("created_at")
        .values_list("name", flat=True)
    )


def form_action(html: str) -> str:
    """The action of the page's only POST form (the page must have exactly one)."""
    forms = re.findall(r'<form method="post" action="([^"]+)">', html)
    assert len(forms) == 1, html
    return forms[0]


def assert_private_page(response):
    """Per-person page: not cached, not indexed, no cookie, no script, nothing fetched elsewhere."""
    html = response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert "noindex" in response["X-Robots-Tag"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "script-src" not in response["Content-Security-Policy"]  # default-src 'none' rules
    assert response["X-Frame-Options"] == "DENY"
    assert not response.cookies
    assert "<script" not in html and "javascript:" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


# --- unsubscribe ---------------------------------------------------------------------------


def test_get_shows_a_confirm_button_and_changes_nothing(browser_like, contact):
    url = path(links(contact)["unsubscribeUrl"])
    response = browser_like.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "ada@example.com" in html
    assert "Unsubscribe" in html
    assert form_action(html) == url
    assert '<button type="submit">Unsubscribe</button>' in html
    assert_private_page(response)
    assert browser_like.head(url).status_code == 200
    contact.refresh_from_db()
    assert contact.subscribed is True
    assert subscription_events(contact) == []


def test_the_confirm_button_unsubscribes_once(browser_like, contact):
    page = browser_like.get(path(links(contact)["unsubscribeUrl"])).content.decode()
    response = browser_like.post(form_action(page))
    assert response.status_code == 200
    html = response.content.decode()
    assert "You are unsubscribed" in html
    assert "ada@example.com" in html
    assert form_action(html) == path(links(contact)["subscribeUrl"])  # the re-subscribe button
    assert "Subscribe again" in html
    assert_private_page(response)
    contact.refresh_from_db()
    assert contact.subscribed is False
    assert subscription_events(contact) == [CONTACT_UNSUBSCRIBED]

    again = browser_like.post(form_action(page))  # a double click, a reload
    assert again.status_code == 200 and "You are unsubscribed" in again.content.decode()
    assert subscription_events(contact) == [CONTACT_UNSUBSCRIBED]
    assert contact.data == {"plan": "pro"}  # nothing else of the contact changed


@pytest.mark.parametrize(
    "encode",
    [
        lambda c, url: c.post(
            url, "List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
        ),
        lambda c, url: c.post(url, {"List-Unsubscribe": "One-Click"}),  # multipart/form-data
    ],
    ids=["urlencoded", "multipart"],
)
@override_settings(PLUNK_EVENTS=PUBLIC)
def test_rfc_8058_one_click_post_without_cookie_or_csrf_token(browser_like, contact, encode):
    """What Gmail and Yahoo send to the List-Unsubscribe URL: a bare POST, no cookie."""
    header = list_unsubscribe_headers(contact)["List-Unsubscribe"]
    url = header.removeprefix("<").removesuffix(">")
    assert url.startswith("https://mail.example.com/email/unsubscribe/")
    response = encode(browser_like, path(url))
    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    contact.refresh_from_db()
    assert contact.subscribed is False
    assert subscription_events(contact) == [CONTACT_UNSUBSCRIBED]


def test_other_methods_are_refused(browser_like, contact):
    url = path(links(contact)["unsubscribeUrl"])
    for method in (browser_like.put, browser_like.delete, browser_like.patch):
        assert method(url).status_code == 405
    assert browser_like.post(path(links(contact)["manageUrl"])).status_code == 405
    contact.refresh_from_db()
    assert contact.subscribed is True


# --- subscribe and manage ------------------------------------------------------------------


def test_subscribe_confirms_then_records_contact_subscribed(browser_like, project):
    contact = make_contact(project, subscribed=False)
    before = subscription_events(contact)
    url = path(links(contact)["subscribeUrl"])
    page = browser_like.get(url)
    assert page.status_code == 200 and form_action(page.content.decode()) == url
    contact.refresh_from_db()
    assert contact.subscribed is False

    response = browser_like.post(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "You are subscribed" in html
    assert form_action(html) == path(links(contact)["unsubscribeUrl"])
    contact.refresh_from_db()
    assert contact.subscribed is True
    assert subscription_events(contact) == [*before, CONTACT_SUBSCRIBED]
    browser_like.post(url)
    assert subscription_events(contact) == [*before, CONTACT_SUBSCRIBED]


def test_manage_shows_the_state_and_the_button_that_flips_it(browser_like, contact):
    url = path(links(contact)["manageUrl"])
    html = browser_like.get(url).content.decode()
    assert "ada@example.com" in html and "receives our marketing emails" in html
    assert form_action(html) == path(links(contact)["unsubscribeUrl"])

    browser_like.post(form_action(html))
    response = browser_like.get(url)
    html = response.content.decode()
    assert "does not receive our marketing emails" in html
    assert form_action(html) == path(links(contact)["subscribeUrl"])
    assert_private_page(response)
    browser_like.post(form_action(html))
    assert subscription_events(contact) == [CONTACT_UNSUBSCRIBED, CONTACT_SUBSCRIBED]


def test_pages_show_no_contact_data_but_the_email(browser_like, project):
    contact = make_contact(project, email="grace@example.com")
    Contact.objects.filter(pk=contact.pk).update(data={"firstName": "Grace", "secret": "s3cr3t"})
    for name in ("unsubscribeUrl", "subscribeUrl", "manageUrl"):
        html = browser_like.get(path(links(contact)[name])).content.decode()
        assert "grace@example.com" in html
        assert "Grace<" not in html and "s3cr3t" not in html and str(contact.pk) not in html


def test_the_page_language_follows_the_active_language(browser_like, contact):
    with override_settings(LANGUAGE_CODE="de"):
        html = browser_like.get(path(links(contact)["manageUrl"])).content.decode()
    assert '<html lang="de" dir="ltr">' in html


# --- bad links -----------------------------------------------------------------------------


def tampered_tokens(contact, other):
    token = token_for(contact)
    value, signature = token.split(":")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    with override_settings(SECRET_KEY="another-site"):
        foreign = token_for(contact)
    return {
        "signature": f"{value}:{flipped}",
        "other contact's id": f"{token_for(other).split(':')[0]}:{signature}",
        "cut": token[:-5],
        "no signature": value,
        "other key": foreign,
        "other salt": signing.Signer(salt="elsewhere").sign(value),
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_token_is_404_and_changes_nothing(browser_like, project, contact, method):
    other = make_contact(project, email="bob@example.com")
    for reason, token in tampered_tokens(contact, other).items():
        for name in ("email-unsubscribe", "email-subscribe", "email-manage"):
            if method == "post" and name == "email-manage":
                continue
            url = reverse(f"plunk_events:{name}", args=[token])
            response = getattr(browser_like, method)(url)
            assert response.status_code == 404, (reason, name)
            html = response.content.decode()
            assert "This link is not valid" in html and "Nothing was changed" in html
            assert_private_page(response)
            assert "example.com" not in html
    for person in (contact, other):
        person.refresh_from_db()
        assert person.subscribed is True
        assert subscription_events(person) == []


def test_a_deleted_contact_is_404(browser_like, project, contact):
    urls = links(contact)
    delete_contact(project, contact.pk)
    for name in ("unsubscribeUrl", "subscribeUrl", "manageUrl"):
        response = browser_like.get(path(urls[name]))
        assert response.status_code == 404
        assert "no longer on our list" in response.content.decode()
    assert browser_like.post(path(urls["unsubscribeUrl"])).status_code == 404
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert not Event.objects.filter(contact_id=contact.pk).exists()


def test_links_survive_a_key_rotation_listed_in_fallbacks(browser_like, contact):
    with override_settings(SECRET_KEY="old-key"):
        url = path(links(contact)["unsubscribeUrl"])
    with override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=["old-key"]):
        assert browser_like.get(url).status_code == 200
    with override_settings(SECRET_KEY="new-key"):
        assert browser_like.get(url).status_code == 404


# --- tokens, links and headers -------------------------------------------------------------


def test_tokens_are_short_stable_and_name_their_contact(project, other_project):
    first = make_contact(project)
    second = make_contact(other_project)  # same email, other project
    token = token_for(first)
    assert len(token) <= 90 and "/" not in token
    assert token_for(first) == token
    assert read_token(token) == (project.pk, first.pk)
    assert read_token(token_for(second)) == (other_project.pk, second.pk)


def test_links_are_relative_without_public_url_and_carry_no_headers(contact):
    urls = links(contact)
    token = token_for(contact)
    assert urls == {
        "unsubscribeUrl": f"/email/unsubscribe/{token}",
        "subscribeUrl": f"/email/subscribe/{token}",
        "manageUrl": f"/email/manage/{token}",
    }
    assert list_unsubscribe_headers(contact) == {}


@pytest.mark.parametrize(
    ("public_url", "base"),
    [
        ("https://mail.example.com", "https://mail.example.com"),
        ("https://mail.example.com/", "https://mail.example.com"),
        ("https://example.com/news/", "https://example.com/news"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_public_url_makes_links_absolute_and_adds_one_click_headers(contact, public_url, base):
    with override_settings(PLUNK_EVENTS={"PUBLIC_URL": public_url}):
        urls = links(contact)
        headers = list_unsubscribe_headers(contact)
    token = token_for(contact)
    assert urls["unsubscribeUrl"] == f"{base}/email/unsubscribe/{token}"
    assert urls["manageUrl"] == f"{base}/email/manage/{token}"
    assert headers == {
        "List-Unsubscribe": f"<{base}/email/unsubscribe/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


@pytest.mark.parametrize(
    "public_url", ["", "mail.example.com", "ftp://example.com", "https://", "https://x.com/?a=1"]
)
def test_an_unusable_public_url_is_ignored_and_warned_about(contact, public_url):
    with override_settings(PLUNK_EVENTS={"PUBLIC_URL": public_url}):
        assert links(contact)["unsubscribeUrl"].startswith("/email/unsubscribe/")
        assert list_unsubscribe_headers(contact) == {}
        problems = [p for p in check_settings() if p.id == "plunk_events.W002"]
    assert len(problems) == 1 and problems[0].hint


# --- system check --------------------------------------------------------------------------


def w002(*, deploy: bool) -> int:
    problems = run_checks(include_deployment_checks=deploy)
    return sum(p.id == "plunk_events.W002" for p in problems)


def test_the_check_warns_on_deploy_when_public_url_is_unset():
    with override_settings(PLUNK_EVENTS={}):
        assert w002(deploy=False) == 0  # development and tests need no public address
        assert w002(deploy=True) == 1
    with override_settings(PLUNK_EVENTS=PUBLIC):
        assert w002(deploy=False) == 0
        assert w002(deploy=True) == 0
    with override_settings(PLUNK_EVENTS={"PUBLIC_URL": "example.com"}):
        assert w002(deploy=False) == 1
        assert w002(deploy=True) == 1


def test_the_check_warns_on_deploy_when_public_url_is_plain_http():
    """Fine for development (the demo runs on http://127.0.0.1), not for mail that goes out:
    RFC 8058 one-click unsubscribe needs https."""
    with override_settings(PLUNK_EVENTS={"PUBLIC_URL": "http://mail.example.com"}):
        assert w002(deploy=False) == 0
        assert w002(deploy=True) == 1
