"""Periodic work on the task worker (issue 9): ``PeriodicSchedule`` holds when each periodic job
is due next and the token of the self-rescheduling tick (``plunk_events.tasks``)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("plunk_events", "0003_deletion_lease"),
    ]

    operations = [
        migrations.CreateModel(
            name="PeriodicSchedule",
            fields=[
                ("name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("next_run_at", models.DateTimeField()),
                ("token", models.CharField(blank=True, default="", max_length=32)),
                ("last_run_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]
