"""The subscription pages behind the signed links of :mod:`.services.email_links`.

Plain Django views and templates: no login, no JavaScript, no cookie. The signed token in the
URL is the credential: whoever holds the link may change that one contact's subscription, which
is what RFC 8058 asks of one-click unsubscribe (the mailbox provider POSTs
``List-Unsubscribe=One-Click`` to the ``List-Unsubscribe`` URL with no cookie and no form). So
the POSTs are ``csrf_exempt``: a CSRF token would guard nothing the signature does not, and
would make the page set a cookie. A GET never changes anything, since link scanners and mail
clients fetch links ahead of the reader; the change is a POST from the page's button.
"""

from __future__ import annotations

from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .models import Contact
from .services.contacts import update_contact
from .services.db import db_for_write
from .services.email_links import read_token
from .services.errors import NotFound

TEMPLATES = "plunk_events/email/"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _respond(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    """A page about one person's subscription: never cached, never indexed, no referrer."""
    response = render(request, TEMPLATES + template, context, status=status)
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    # Nothing to load but the inline style, forms only to this site, never in a frame (a framed
    # one-button page invites clickjacking).
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["X-Frame-Options"] = "DENY"
    return response


def _not_found(request: HttpRequest, reason: str) -> HttpResponse:
    return _respond(request, "invalid.html", {"reason": reason}, status=404)


def _contact(token: str) -> Contact | str:
    """The contact a token names, or why there is none: ``"invalid"`` (tampered, truncated, or
    signed with another key) or ``"gone"`` (the contact or its project was deleted)."""
    try:
        project_id, contact_id = read_token(token)
    except signing.BadSignature:
        return "invalid"
    # The primary, like the write that may just have happened: no replica lag on these pages.
    contact = (
        Contact.objects.using(db_for_write())
        .select_related("project")
        .filter(project_id=project_id, pk=contact_id)
        .first()
    )
    return contact if contact is not None else "gone"


def _page_urls(token: str) -> dict[str, str]:
    """The three pages of this token, as paths on the host serving this request."""
    return {
        "unsubscribe_url": reverse("plunk_events:email-unsubscribe", args=[token]),
        "subscribe_url": reverse("plunk_events:email-subscribe", args=[token]),
        "manage_url": reverse("plunk_events:email-manage", args=[token]),
    }


def _subscription_page(request: HttpRequest, token: str, template: str, subscribe: bool):
    """GET: confirm page. POST: set ``subscribed`` through the contacts service (which records
    ``contact.subscribed``/``contact.unsubscribed`` only on a change, so a repeat records
    nothing) and show the result."""
    contact = _contact(token)
    if isinstance(contact, str):
        return _not_found(request, contact)
    done = request.method == "POST"
    if done:
        try:
            contact = update_contact(contact.project, contact.pk, subscribed=subscribe)
        except NotFound:  # deleted since we read it
            return _not_found(request, "gone")
    context = {"email": contact.email, "done": done, **_page_urls(token)}
    return _respond(request, template, context)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The ``List-Unsubscribe`` URL: also takes the RFC 8058 one-click POST as is."""
    return _subscription_page(request, token, "unsubscribe.html", subscribe=False)


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HttpRequest, token: str) -> HttpResponse:
    return _subscription_page(request, token, "subscribe.html", subscribe=True)


@csrf_exempt  # it takes no POST: answer 405, not the CSRF middleware's 403
@require_http_methods(["GET", "HEAD"])
def manage(request: HttpRequest, token: str) -> HttpResponse:
    """The address and its state, with the button that flips it (a form to the other pages)."""
    contact = _contact(token)
    if isinstance(contact, str):
        return _not_found(request, contact)
    context = {"email": contact.email, "subscribed": contact.subscribed, **_page_urls(token)}
    return _respond(request, "manage.html", context)
