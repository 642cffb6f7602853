"""Projects and their API keys.

The secret key is stored hashed (``Project.secret_key_hash``), so its plaintext can be read only
from the Project these functions return, as ``project.secret_key``: show it to the user then,
because nothing can show it later. On any other instance ``project.secret_key`` raises
AttributeError; ``project.secret_key_prefix`` (``sk_3f9a``) is what can be displayed.
"""

from __future__ import annotations

import time

from ..conf import conf
from ..models import Project, new_public_key, new_secret_key


class _KeyCache:
    """Projects found by key in the last ``API_KEY_CACHE_SECONDS``, per process.

    Saves the key lookup's round trip on every request. Entries are keyed on the digest of the
    presented key, so no plaintext key is kept in memory. Only hits are kept, so unknown keys
    always reach the database; a regenerated key pair stops working in this process at once and
    in other processes within the TTL.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[float, Project]] = {}

    def get(self, kind: str, digest: str) -> Project | None:
        entry = self._entries.get((kind, digest))
        if entry is None or entry[0] < time.monotonic() or conf.API_KEY_CACHE_SECONDS <= 0:
            return None
        return entry[1]

    def put(self, kind: str, digest: str, project: Project) -> None:
        ttl = conf.API_KEY_CACHE_SECONDS
        if ttl <= 0:
            return
        if len(self._entries) > 10_000:  # bounded: stale entries of rotated keys go too
            self._entries.clear()
        self._entries[(kind, digest)] = (time.monotonic() + ttl, project)

    def clear(self) -> None:
        self._entries.clear()


key_cache = _KeyCache()


def create_project(name: str) -> Project:
    """A new project with a fresh ``pk_``/``sk_`` key pair; ``.secret_key`` holds the secret."""
    return Project.objects.create(name=name)


def regenerate_keys(project: Project, *, public: bool = True) -> Project:
    """Replace both keys at once; the old pair stops working immediately (no grace period).

    ``public=False`` replaces only the secret key. Returns ``project`` with the new plaintext
    secret on ``project.secret_key``.
    """
    fields = ["secret_key_hash", "secret_key_prefix"]
    if public:
        project.public_key = new_public_key()
        fields.append("public_key")
    project.secret_key = new_secret_key()
    project.save(update_fields=fields)
    key_cache.clear()  # this process forgets the old pair at once
    return project
