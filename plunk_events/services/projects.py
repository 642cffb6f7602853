"""Projects and their API keys."""

from __future__ import annotations

from ..models import Project, new_public_key, new_secret_key


def create_project(name: str) -> Project:
    """A new project with a fresh ``pk_``/``sk_`` key pair."""
    return Project.objects.create(name=name)


def regenerate_keys(project: Project) -> Project:
    """Replace both keys at once; the old pair stops working immediately (no grace period)."""
    project.public_key = new_public_key()
    project.secret_key = new_secret_key()
    project.save(update_fields=["public_key", "secret_key"])
    from ..api.authentication import key_cache

    key_cache.clear()  # this process forgets the old pair at once
    return project
