from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from plunk_events.services.projects import create_project


class Command(BaseCommand):
    help = (
        "Create a project with a fresh public/secret key pair and print the keys. The secret key"
        " is stored hashed: this is the only time it is shown."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true", help="End with one JSON line.")

    def handle(self, *args, name, **options):
        project = create_project(name)
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": str(project.id),
                        "name": project.name,
                        "public_key": project.public_key,
                        "secret_key": project.secret_key,
                    }
                )
            )
            return
        self.stdout.write(f"Project {project.name} ({project.id})")
        self.stdout.write(f"  public key: {project.public_key}")
        self.stdout.write(f"  secret key: {project.secret_key}")
        self.stdout.write("Copy the secret key now: it is stored hashed and never shown again.")
