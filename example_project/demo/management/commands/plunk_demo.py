"""``manage.py plunk_demo``: the demo data set of ``make demo``, then the login and the API keys.

Loads one project "Demo" with a few hundred contacts and a few thousand events over the last 90
days (system events included), one segment and one workflow that reference event names, and an
``admin``/``admin`` superuser. Safe to run again: an existing "Demo" project, its data and the
superuser are reused, never duplicated. The data is generated from a fixed seed, so every run
produces the same contacts and events (relative to the current hour). Secret keys are stored
hashed, so every run gives the project a new secret key to print (the public key stays).
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

import plunk_events
from plunk_events.models import Event, Project, Segment, Template, Workflow
from plunk_events.services import (
    automation,
    executions,
    importer,
    segments,
    workflow_runtime,
    workflows,
)
from plunk_events.services.projects import create_project, regenerate_keys
from plunk_events.services.templates import create_template

PROJECT_NAME = "Demo"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"
SEED = 20240115
CONTACTS = 300
DAYS = 90

FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
    "Radia", "Guido", "Sophie", "Tim", "Katherine", "John", "Hedy", "Donald", "Anita", "Niklaus",
]  # fmt: skip
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
    "Allen", "Dijkstra", "Perlman", "Rossum", "Wilson", "Berners-Lee", "Johnson", "McCarthy",
]  # fmt: skip
COUNTRIES = [("NL", "nl"), ("DE", "de"), ("FR", "fr"), ("GB", "en"), ("US", "en"), ("ES", "es")]
FEATURES = ["dashboard", "exports", "api", "webhooks", "reports", "team"]
SUBJECTS = ["Welcome to Acme", "Your weekly digest", "Tips to get started", "What's new in Acme"]

SEGMENT = {
    "name": "Recent purchasers",
    "description": "Contacts who purchased in the last 30 days",
    # Tracked: members are stored, with segment.recent-purchasers.entry/.exit events.
    "track_membership": True,
    "condition": {
        "logic": "AND",
        "groups": [
            {
                "filters": [
                    {
                        "field": "event.purchase",
                        "operator": "triggeredWithin",
                        "value": 30,
                        "unit": "days",
                    },
                    {"field": "subscribed", "operator": "equals", "value": True},
                ]
            }
        ],
    },
}
WORKFLOW = {
    "name": "Welcome series",
    "description": "Waits for new sign-ups to create a first project, then marks them onboarded",
    "event_name": "signed_up",
    "enabled": True,
    # After the automatic TRIGGER step on signed_up (README "Workflows").
    "steps": [
        {
            "type": "WAIT_FOR_EVENT",
            "name": "Wait for a first project",
            "config": {"eventName": "project.created", "timeout": 259200},
        },
        {
            "type": "UPDATE_CONTACT",
            "name": "Mark onboarded",
            "config": {"updates": {"onboarded": True}},
        },
    ],
}
#: The demo's sign-ups of the last days get runs of the workflow, as if it had been enabled
#: then; this many of them create their first project now, and their runs complete.
#: A transactional template for POST /v1/send (the demo prints its mail on the terminal).
TEMPLATE = {
    "name": "Welcome",
    "type": Template.Type.TRANSACTIONAL,
    "subject": "Welcome to Acme, {{firstName ?? friend}}",
    "body": (
        "<h1>Welcome, {{firstName ?? friend}}!</h1>"
        "<p>Your plan: {{plan ?? free}}.</p>"
        '<p><a href="{{manageUrl}}">Manage your email preferences</a></p>'
    ),
    "from_email": "hello@example.com",
    "from_name": "Acme",
}
RECENT_SIGNUP_DAYS = 7
PROJECTS_CREATED_NOW = 3


def demo_rows(now, seed: int = SEED) -> list[dict]:
    """The demo's contacts and events as import rows, generated from ``seed``."""
    rng = random.Random(seed)
    start = now - timedelta(days=DAYS)
    rows: list[dict] = []

    def at(after, max_hours: float):
        moment = after + timedelta(hours=rng.uniform(0.02, max_hours))
        return moment if moment < now else None

    def email_events(email: str, sent_at, subject: str) -> None:
        email_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        data = {"subject": subject, "from": "hello@acme.test", "emailId": str(email_id)}
        rows.append(row(email, "email.sent", data, sent_at, email_id=email_id))
        opened = at(sent_at, 48) if rng.random() < 0.55 else None
        if opened:
            rows.append(row(email, "email.open", data, opened, email_id=email_id))
            if rng.random() < 0.3 and (clicked := at(opened, 1)):
                rows.append(row(email, "email.click", data, clicked, email_id=email_id))

    for i in range(CONTACTS):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}.{i}@example.com".lower()
        country, locale = rng.choice(COUNTRIES)
        # More recent sign-ups than old ones, as a growing product has.
        signed_up = start + timedelta(days=DAYS * rng.random() ** 0.7)
        rows.append(
            row(
                email,
                "signed_up",
                {
                    "firstName": first,
                    "lastName": last,
                    "country": country,
                    "locale": locale,
                    "plan": "free",
                    "source": {"value": rng.choice(["ads", "blog", "friend"]), "persistent": False},
                },
                signed_up,
            )
        )
        if welcome := at(signed_up, 0.1):
            email_events(email, welcome, SUBJECTS[0])
        moment = signed_up
        while (moment := at(moment, rng.uniform(8, 96))) is not None:
            roll = rng.random()
            if roll < 0.45:
                rows.append(row(email, "login", None, moment))
            elif roll < 0.65:
                # persistent: false keeps the value on the event only, off the contact.
                feature = {"value": rng.choice(FEATURES), "persistent": False}
                rows.append(row(email, "feature_used", {"feature": feature}, moment))
            elif roll < 0.75:
                rows.append(row(email, "project.created", {"projects": rng.randint(1, 5)}, moment))
            elif roll < 0.82:
                amount = rng.choice([19, 49, 99])
                data = {"plan": "pro", "amount": {"value": amount, "persistent": False}}
                rows.append(row(email, "purchase", data, moment))
            elif roll < 0.97:
                email_events(email, moment, rng.choice(SUBJECTS[1:]))
            else:
                break
        if rng.random() < 0.1:
            # Unsubscribed through the preference centre; a third came back later.
            off = at(signed_up, 24 * 30)
            if off:
                rows.append(row(email, "preferences.updated", None, off, subscribed=False))
                if rng.random() < 0.33 and (back := at(off, 24 * 20)):
                    rows.append(row(email, "preferences.updated", None, back, subscribed=True))
    return rows


def row(email, name, data, created_at, *, subscribed=None, email_id=None) -> dict:
    item = {"email": email, "name": name, "data": data, "created_at": created_at}
    if subscribed is not None:
        item["subscribed"] = subscribed
    if email_id is not None:
        item["email_id"] = email_id
    return item


class Command(BaseCommand):
    help = (
        "Load the demo data set (project 'Demo', contacts, events, a segment, a workflow) and"
        " print the login and API keys; the secret key is new on every run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=8000, help="Port the printed URLs use (default 8000)."
        )

    def handle(self, *args, port, **options):
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {port}")
        project, created = self.demo_project()
        loaded = not Event.objects.filter(project=project).exists()
        if loaded:
            now = timezone.now().replace(minute=0, second=0, microsecond=0)
            importer.import_events(project, demo_rows(now))
        self.ensure_segment(project)
        template = self.ensure_template(project)
        workflow = self.ensure_workflow(project)
        if loaded:
            self.start_runs(project, workflow)
        self.ensure_admin()
        self.report(project, created, loaded, f"http://127.0.0.1:{port}", template)

    def demo_project(self) -> tuple[Project, bool]:
        """The "Demo" project, with its plaintext secret key: new, or the old one's replaced."""
        project = Project.objects.filter(name=PROJECT_NAME).order_by("created_at").first()
        if project is not None:
            return regenerate_keys(project, public=False), False
        return create_project(PROJECT_NAME), True

    def ensure_segment(self, project: Project) -> None:
        """The tracked "Recent purchasers" segment, computed now so its member count is real."""
        segment = Segment.objects.filter(project=project, name=SEGMENT["name"]).first()
        if segment is None:
            segment = automation.create_segment(project, type=Segment.Type.DYNAMIC, **SEGMENT)
        elif not segment.track_membership:
            segment = automation.update_segment(project, segment.pk, track_membership=True)
        segments.compute(segment)

    def ensure_template(self, project: Project) -> Template:
        template = Template.objects.filter(project=project, name=TEMPLATE["name"]).first()
        return template or create_template(project, **TEMPLATE)

    def ensure_workflow(self, project: Project) -> Workflow:
        workflow = Workflow.objects.filter(project=project, name=WORKFLOW["name"]).first()
        return workflow or workflows.create_workflow(project, **WORKFLOW)

    def start_runs(self, project: Project, workflow: Workflow) -> None:
        """Runs for the recent sign-ups (imported events start nothing by themselves: they are
        history), each moved to its wait; then a few of those contacts create a project, and
        the task worker completes their runs."""
        since = timezone.now() - timedelta(days=RECENT_SIGNUP_DAYS)
        signups = Event.objects.filter(
            project=project, name="signed_up", created_at__gte=since
        ).order_by("created_at")
        trigger = executions.trigger_step_id(workflow)
        started = []
        for event in signups:
            run = executions.enroll(
                workflow, event.contact_id, context=event.data, source_event_id=event.pk
            )
            if run is not None:
                workflow_runtime.advance(run, trigger)
                started.append(event.contact.email)
        for email in started[:PROJECTS_CREATED_NOW]:
            plunk_events.track(project, email, "project.created", data={"projects": 1})

    def ensure_admin(self) -> None:
        users = get_user_model()._default_manager
        if not users.filter(username=ADMIN_USERNAME).exists():
            users.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)

    def report(
        self, project: Project, created: bool, loaded: bool, base: str, template: Template
    ) -> None:
        contacts = project.contacts.count()
        events = Event.objects.filter(project=project).count()
        name = f'"{project.name}"'
        head = f"Created the demo project {name}" if created else f"Reused the demo project {name}"
        if loaded:
            tail = f"loaded {events:,} events for {contacts:,} contacts."
        else:
            tail = f"its {contacts:,} contacts and {events:,} events were already loaded."
        out = self.stdout.write
        out(f"{head}: {tail}")
        out("")
        out(f"Admin:       {base}/admin/")
        out(f"Login:       {ADMIN_USERNAME} / {ADMIN_PASSWORD}")
        out(f"Public key:  {project.public_key}")
        out(f"Secret key:  {project.secret_key}")
        out("             (new on every run of plunk_demo, and the previous one stops working:")
        out("             secret keys are stored hashed, so this is the only time it is shown)")
        out(f"API docs:    {base}/docs/")
        out("")
        out("Track an event:")
        out(
            f"  curl -X POST {base}/v1/track"
            f' -H "Authorization: Bearer {project.public_key}"'
            ' -H "Content-Type: application/json"'
            """ -d '{"email": "jane@example.com", "event": "signed_up", "data": {"plan": "pro"}}'"""
        )
        out("Then list the newest events:")
        out(f"  curl '{base}/events?limit=5' -H \"Authorization: Bearer {project.secret_key}\"")
        out("Send an email (it prints in this terminal; email.sent follows in /events):")
        out(
            f"  curl -X POST {base}/v1/send"
            f' -H "Authorization: Bearer {project.secret_key}"'
            ' -H "Content-Type: application/json"'
            f""" -d '{{"to": "jane@example.com", "template": "{template.pk}","""
            """ "data": {"firstName": "Jane"}}'"""
        )
