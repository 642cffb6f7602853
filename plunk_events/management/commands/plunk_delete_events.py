from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError

from plunk_events.models import Project
from plunk_events.services import deletion
from plunk_events.services.errors import PlunkError


class Command(BaseCommand):
    help = "Delete every event with NAME in a project, with the guards of DELETE /events/<name>."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project id or name.")
        parser.add_argument("name")

    def handle(self, *args, name, project, **options):
        found = Project.objects.filter(name=project).first()
        if found is None:
            try:
                found = Project.objects.filter(pk=uuid.UUID(project)).first()
            except ValueError:
                found = None
        if found is None:
            raise CommandError(f"No project {project!r}")
        try:
            deleted = deletion.delete_events_by_name(found, name)
        except PlunkError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Deleted {deleted} events named {name!r}")
