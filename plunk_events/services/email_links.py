"""Signed links of a contact's subscription pages (unsubscribe, subscribe, manage).

The token is the project and contact ids (32 bytes, base64url) signed with
``django.core.signing.Signer`` (HMAC-SHA256 on ``SECRET_KEY``, salted for this purpose): a link
works without a login, cannot be forged or pointed at another contact, is short enough for
plain-text mail (87 characters), and keeps working after a key rotation only if the site lists
its old ``SECRET_KEY_FALLBACKS``. It does not expire: mailbox providers require an unsubscribe
link to keep working long after the mail was sent.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any
from urllib.parse import urlsplit

from django.core import signing
from django.urls import reverse

from ..conf import conf

SALT = "plunk_events.email_links"

#: Template variable → URL name of its page (``plunk_events:<name>``).
PAGES = {
    "unsubscribeUrl": "email-unsubscribe",
    "subscribeUrl": "email-subscribe",
    "manageUrl": "email-manage",
}


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def token_for(contact: Any) -> str:
    """A URL-safe token naming ``contact`` (anything with ``pk``/``id`` and ``project_id``)."""
    contact_id = getattr(contact, "pk", None) or contact.id
    raw = uuid.UUID(str(contact.project_id)).bytes + uuid.UUID(str(contact_id)).bytes
    return _signer().sign(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


def read_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """``(project_id, contact_id)`` of a token; ``signing.BadSignature`` if it was tampered with,
    cut, or signed with a key the site no longer knows."""
    value = _signer().unsign(token)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise signing.BadSignature("Malformed subscription token") from None
    if len(raw) != 32:
        raise signing.BadSignature("Malformed subscription token")
    return uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:])


def public_url_problem(value: Any) -> str | None:
    """Why ``value`` cannot be the ``PUBLIC_URL`` links are built on, or ``None`` if it can:
    an ``http(s)://host`` URL, optionally with a path, without query or fragment."""
    if not value:
        return "is not set"
    if not isinstance(value, str):
        return "is not a string"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL with a host"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "has a query, fragment or credentials"
    return None


def public_url() -> str | None:
    """``PUBLIC_URL`` without its trailing slash, or ``None`` while it is unset or unusable
    (system check ``plunk_events.W002`` says why)."""
    value = conf.PUBLIC_URL
    return None if public_url_problem(value) else value.rstrip("/")


def absolute(path: str) -> str:
    """``path`` on the site's ``PUBLIC_URL``; the bare path when that is not usable."""
    return (public_url() or "") + path


def links(contact: Any) -> dict[str, str]:
    """The ``unsubscribeUrl``, ``subscribeUrl`` and ``manageUrl`` template variables."""
    token = token_for(contact)
    return {
        variable: absolute(reverse(f"plunk_events:{name}", args=[token]))
        for variable, name in PAGES.items()
    }


def list_unsubscribe_headers(contact: Any) -> dict[str, str]:
    """RFC 2369 ``List-Unsubscribe`` and RFC 8058 one-click headers of marketing mail; none
    without a usable ``PUBLIC_URL`` (mailbox providers need an absolute https address)."""
    if public_url() is None:
        return {}
    return {
        "List-Unsubscribe": f"<{links(contact)['unsubscribeUrl']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
