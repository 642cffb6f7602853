"""Tasks of the engine tests: module-level, so a worker process imports them like the app's."""

from __future__ import annotations

from plunk_events.compat import task
from plunk_events.models import Contact, Project


@task
def record(project_id: str, label: str) -> str:
    """Adds the contact ``<label>@engine.test`` to the project (idempotent).

    Raises if the project is not there: the task ran before its transaction committed.
    """
    project = Project.objects.get(pk=project_id)
    contact, _ = Contact.objects.get_or_create(project=project, email=f"{label}@engine.test")
    return str(contact.pk)
