"""Fixed vocabularies of the Plunk API: system event names, reserved data keys, step types."""

from __future__ import annotations

#: System events Plunk emits itself; they can be listed but never tracked or deleted.
EMAIL_EVENT_PREFIX = "email."
CONTACT_SUBSCRIBED = "contact.subscribed"
CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
SEGMENT_EVENT_PREFIX = "segment."
SEGMENT_EVENT_SUFFIXES = (".entry", ".exit")

#: Keys of ``data`` that are never stored on a contact, as in Plunk (README, "Track").
RESERVED_DATA_KEYS = frozenset(
    {"id", "email", "plunk_id", "plunk_email", "unsubscribeUrl", "subscribeUrl", "manageUrl"}
)

#: Key prefixes of the two API keys of a project.
PUBLIC_KEY_PREFIX = "pk_"
SECRET_KEY_PREFIX = "sk_"
#: Characters of a secret key after its prefix that are stored for display (``sk_3f9a…``).
SECRET_KEY_DISPLAY_CHARS = 4

EVENT_NAME_MAX_LENGTH = 255
EMAIL_MAX_LENGTH = 320


def is_system_event(name: str) -> bool:
    """True for the names Plunk records itself, which cannot be tracked (README, "Track");
    the check is case-sensitive."""
    return (
        name.startswith(EMAIL_EVENT_PREFIX)
        or name in (CONTACT_SUBSCRIBED, CONTACT_UNSUBSCRIBED)
        or (name.startswith(SEGMENT_EVENT_PREFIX) and name.endswith(SEGMENT_EVENT_SUFFIXES))
    )
