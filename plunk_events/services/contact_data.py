"""The contact-data merge rule of ``POST /v1/track`` (and of the contacts API and import).

Incoming ``data`` is applied onto the contact's stored ``data`` key by key, shallowly:

- a reserved key (``id``, ``email``, ``plunk_id``, ``plunk_email``, ``unsubscribeUrl``,
  ``subscribeUrl``, ``manageUrl``) and the value ``""`` are skipped;
- ``null`` deletes the key;
- ``{"value": x, "persistent": false}`` stays on the event only; ``{"value": x, "persistent":
  true}`` stores ``x``;
- any other value (nested objects included) replaces the stored one;
- an empty result is stored as ``NULL``.

The rule has two implementations, side by side here: :func:`merge_contact_data` in Python (the
general path: SQLite, an Idempotency-Key, the batch, the contacts API, import) and
:data:`MERGED_DATA_SQL` in SQL (the one-statement track on PostgreSQL, which merges without
reading the row first). Both start from the same patch, :func:`contact_data_patch`;
``tests/services/test_contact_data.py`` checks with random data that they agree with each other
and with a reference written in the test.
"""

from __future__ import annotations

from typing import Any

from ..constants import RESERVED_DATA_KEYS

#: The rule in SQL for a jsonb ``{column}``: the patch's sets (``%(to_set)s``, a jsonb object)
#: replace keys, then its deletes (``%(to_delete)s``, a text array) go; ``{}`` becomes NULL.
MERGED_DATA_SQL = (
    "NULLIF((COALESCE({column}, '{{}}'::jsonb) || %(to_set)s::jsonb) - %(to_delete)s::text[],"
    " '{{}}'::jsonb)"
)


def is_value_wrapper(value: Any) -> bool:
    """``{"value": x, "persistent": …}``: a value with a say on whether it is stored."""
    return isinstance(value, dict) and "value" in value and "persistent" in value


def contact_data_patch(incoming: dict | None) -> tuple[dict, list[str]]:
    """The merge rule as a patch: the keys to set and the keys to delete.

    Reserved keys and ``""`` are skipped; ``null`` deletes; ``{value, persistent: false}`` stays
    off the contact; ``{value, persistent: true}`` is unwrapped. Keys are unique, so applying
    the sets and then the deletes equals applying the keys one by one.
    """
    to_set: dict = {}
    to_delete: list[str] = []
    for key, value in (incoming or {}).items():
        if key in RESERVED_DATA_KEYS or value == "":
            continue
        if value is None:
            to_delete.append(key)
            continue
        if is_value_wrapper(value):
            if value["persistent"] is False:
                continue
            if value["persistent"] is True:
                value = value["value"]
        to_set[key] = value
    return to_set, to_delete


def merge_contact_data(current: dict | None, incoming: dict | None) -> dict | None:
    """``incoming`` applied onto a copy of ``current``: a shallow merge by Plunk's rules
    (:func:`contact_data_patch`); an empty result is stored as ``None``."""
    to_set, to_delete = contact_data_patch(incoming)
    merged = {**(current or {}), **to_set}
    for key in to_delete:
        merged.pop(key, None)
    return merged or None
