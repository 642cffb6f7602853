"""Signed links of a contact's subscription pages (unsubscribe, subscribe, manage).

The token is ``django.core.signing`` over the project and contact ids (salted per purpose), so a
link works without a login, cannot be forged or pointed at another contact, and keeps working
after a key rotation only if the site lists its old ``SECRET_KEY_FALLBACKS``. It does not expire:
mailbox providers require an unsubscribe link to keep working long after the mail was sent.
"""

from __future__ import annotations

from typing import Any

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


def token_for(contact: Any) -> str:
    """A URL-safe token naming ``contact`` (anything with ``pk``/``id`` and ``project_id``)."""
    contact_id = getattr(contact, "pk", None) or contact.id
    return signing.dumps([str(contact.project_id), str(contact_id)], salt=SALT, compress=True)


def read_token(token: str) -> tuple[str, str]:
    """``(project_id, contact_id)`` of a token; ``signing.BadSignature`` if it was tampered with."""
    value = signing.loads(token, salt=SALT)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise signing.BadSignature("Malformed subscription token")
    return value[0], value[1]


def absolute(path: str) -> str:
    """``path`` on the site's ``PUBLIC_URL``; the bare path when that is not set."""
    base = (conf.PUBLIC_URL or "").rstrip("/")
    return base + path


def links(contact: Any) -> dict[str, str]:
    """The ``unsubscribeUrl``, ``subscribeUrl`` and ``manageUrl`` template variables."""
    token = token_for(contact)
    return {
        variable: absolute(reverse(f"plunk_events:{name}", args=[token]))
        for variable, name in PAGES.items()
    }


def list_unsubscribe_headers(contact: Any) -> dict[str, str]:
    """RFC 2369 ``List-Unsubscribe`` and RFC 8058 one-click headers of marketing mail; none when
    ``PUBLIC_URL`` is not set (mailbox providers need an absolute https address)."""
    if not conf.PUBLIC_URL:
        return {}
    return {
        "List-Unsubscribe": f"<{links(contact)['unsubscribeUrl']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
