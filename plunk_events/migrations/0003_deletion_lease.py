"""Delete jobs get a worker lease (issue 7): ``owner``, ``heartbeat_at``, ``lease_expires_at``.

Jobs RUNNING before this migration have no lease, so they count as abandoned: the next DELETE of
the name, a segment or workflow write naming it, or ``plunk_resume_deletions`` finishes them.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("plunk_events", "0002_hashed_secret_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="eventdeletion",
            name="owner",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.AddField(
            model_name="eventdeletion",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="eventdeletion",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
