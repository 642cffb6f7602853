"""Workflow runtime (issue 10): step positions, transitions, executions and step executions.

Existing workflows were linear lists ordered by ``order``; each becomes the same chain of
transitions (see ``chain_existing_steps``).
"""

import django.db.models.deletion
import django.utils.timezone
import plunk_events.ids
import plunk_events.models
from django.db import migrations, models


#: Vertical distance between two chained steps when they are laid out in a column.
ROW_HEIGHT = 150


def chain_existing_steps(apps, schema_editor):
    """Link each workflow's steps in ``order``: a CONDITION leads on by its ``yes`` branch, a
    WAIT_FOR_EVENT by its EVENT outcome (and TIMEOUT if it has a timeout), an EXIT nowhere."""
    alias = schema_editor.connection.alias
    Step = apps.get_model("plunk_events", "WorkflowStep")
    Transition = apps.get_model("plunk_events", "WorkflowTransition")
    steps_by_workflow = {}
    for step in Step.objects.using(alias).order_by("workflow_id", "order", "id"):
        steps_by_workflow.setdefault(step.workflow_id, []).append(step)
    transitions = []
    for steps in steps_by_workflow.values():
        for row, step in enumerate(steps):
            step.position = {"x": 0, "y": row * ROW_HEIGHT}
        Step.objects.using(alias).bulk_update(steps, ["position"])
        for before, after in zip(steps, steps[1:]):
            edge = {
                "project_id": before.project_id,
                "workflow_id": before.workflow_id,
                "from_step_id": before.id,
                "to_step_id": after.id,
            }
            if before.type == "EXIT":
                continue
            if before.type == "CONDITION":
                transitions.append(Transition(**edge, condition={"branch": "yes"}))
            elif before.type == "WAIT_FOR_EVENT":
                transitions.append(Transition(**edge, wait_outcome="EVENT"))
                config = before.config if isinstance(before.config, dict) else {}
                if config.get("timeout"):
                    transitions.append(Transition(**edge, wait_outcome="TIMEOUT"))
            else:
                transitions.append(Transition(**edge))
    Transition.objects.using(alias).bulk_create(transitions, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("plunk_events", "0006_idempotency_replay"),
    ]

    operations = [
        migrations.AddField(
            model_name="workflowstep",
            name="position",
            field=models.JSONField(blank=True, default=plunk_events.models.default_position),
        ),
        migrations.CreateModel(
            name="WorkflowExecution",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=plunk_events.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("RUNNING", "Running"),
                            ("WAITING", "Waiting"),
                            ("COMPLETED", "Completed"),
                            ("EXITED", "Exited"),
                            ("FAILED", "Failed"),
                            ("CANCELLED", "Cancelled"),
                        ],
                        default="RUNNING",
                        max_length=10,
                    ),
                ),
                ("exit_reason", models.TextField(blank=True, null=True)),
                ("context", models.JSONField(blank=True, null=True)),
                ("source_event_id", models.UUIDField(blank=True, null=True)),
                ("enrollment_key", models.UUIDField(blank=True, editable=False, null=True)),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "contact",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="workflow_executions",
                        to="plunk_events.contact",
                    ),
                ),
                (
                    "current_step",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="plunk_events.workflowstep",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="plunk_events.project",
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="executions",
                        to="plunk_events.workflow",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="WorkflowStepExecution",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=plunk_events.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("PENDING", "Pending"),
                            ("SCHEDULED", "Scheduled"),
                            ("WAITING", "Waiting"),
                            ("RUNNING", "Running"),
                            ("COMPLETED", "Completed"),
                            ("SKIPPED", "Skipped"),
                            ("FAILED", "Failed"),
                        ],
                        default="PENDING",
                        max_length=10,
                    ),
                ),
                ("output", models.JSONField(blank=True, null=True)),
                ("error", models.TextField(blank=True, null=True)),
                ("execute_after", models.DateTimeField(blank=True, null=True)),
                ("wait_event_name", models.CharField(blank=True, default="", max_length=255)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "contact",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="plunk_events.contact",
                    ),
                ),
                (
                    "execution",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="step_executions",
                        to="plunk_events.workflowexecution",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="plunk_events.project",
                    ),
                ),
                (
                    "step",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="executions",
                        to="plunk_events.workflowstep",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="WorkflowTransition",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=plunk_events.ids.uuid7,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("condition", models.JSONField(blank=True, null=True)),
                (
                    "wait_outcome",
                    models.CharField(
                        blank=True,
                        choices=[("EVENT", "Event"), ("TIMEOUT", "Timeout")],
                        max_length=10,
                        null=True,
                    ),
                ),
                ("priority", models.PositiveIntegerField(default=0)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                (
                    "from_step",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outgoing_transitions",
                        to="plunk_events.workflowstep",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        to="plunk_events.project",
                    ),
                ),
                (
                    "to_step",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="incoming_transitions",
                        to="plunk_events.workflowstep",
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="transitions",
                        to="plunk_events.workflow",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="workflowexecution",
            index=models.Index(
                fields=["project", "workflow", "-started_at", "-id"],
                name="plunk_execution_p_started",
            ),
        ),
        migrations.AddIndex(
            model_name="workflowexecution",
            index=models.Index(
                fields=["project", "workflow", "status", "-started_at", "-id"],
                name="plunk_execution_p_status",
            ),
        ),
        migrations.AddIndex(
            model_name="workflowexecution",
            index=models.Index(
                fields=["project", "contact", "workflow"], name="plunk_execution_p_contact"
            ),
        ),
        migrations.AddIndex(
            model_name="workflowexecution",
            index=models.Index(
                condition=models.Q(("status", "RUNNING")),
                fields=["project", "updated_at"],
                name="plunk_execution_p_running",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowexecution",
            constraint=models.UniqueConstraint(
                condition=models.Q(("source_event_id__isnull", False)),
                fields=("project", "workflow", "source_event_id"),
                name="plunk_execution_source_event",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowexecution",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ("RUNNING", "WAITING"))),
                fields=("project", "workflow", "contact"),
                name="plunk_execution_one_active",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowexecution",
            constraint=models.UniqueConstraint(
                condition=models.Q(("enrollment_key__isnull", False)),
                fields=("project", "workflow", "enrollment_key"),
                name="plunk_execution_enrolled_once",
            ),
        ),
        migrations.AddIndex(
            model_name="workflowstepexecution",
            index=models.Index(
                condition=models.Q(
                    ("execute_after__isnull", False),
                    ("status__in", ("PENDING", "SCHEDULED", "WAITING")),
                ),
                fields=["project", "execute_after"],
                name="plunk_stepexec_p_due",
            ),
        ),
        migrations.AddIndex(
            model_name="workflowstepexecution",
            index=models.Index(
                condition=models.Q(("status", "WAITING")),
                fields=["project", "contact", "wait_event_name"],
                name="plunk_stepexec_p_waiting",
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowstepexecution",
            constraint=models.UniqueConstraint(
                fields=("project", "execution", "step"), name="plunk_stepexec_once"
            ),
        ),
        migrations.AddIndex(
            model_name="workflowtransition",
            index=models.Index(fields=["project", "workflow"], name="plunk_transition_p_workflow"),
        ),
        migrations.AddIndex(
            model_name="workflowtransition",
            index=models.Index(
                fields=["project", "from_step", "priority"], name="plunk_transition_p_from"
            ),
        ),
        migrations.AddConstraint(
            model_name="workflowtransition",
            constraint=models.UniqueConstraint(
                condition=models.Q(("wait_outcome__isnull", False)),
                fields=("project", "from_step", "wait_outcome"),
                name="plunk_transition_one_outcome",
            ),
        ),
        migrations.RunPython(chain_existing_steps, migrations.RunPython.noop),
    ]
