"""Projects and their API keys.

The secret key is stored hashed (``Project.secret_key_hash``), so its plaintext can be read only
from the Project these functions return, as ``project.secret_key``: show it to the user then,
because nothing can show it later. On any other instance ``project.secret_key`` raises
AttributeError; ``project.secret_key_prefix`` (``sk_3f9a``) is what can be displayed.
"""

from __future__ import annotations

from ..models import Project, new_public_key, new_secret_key


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
    from ..api.authentication import key_cache

    key_cache.clear()  # this process forgets the old pair at once
    return project
