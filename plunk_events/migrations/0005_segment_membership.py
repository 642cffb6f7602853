"""Segment membership (issue 9): rows of STATIC and tracked DYNAMIC segments, soft exits."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("plunk_events", "0004_periodic_schedule"),
    ]

    operations = [
        migrations.CreateModel(
            name="SegmentMembership",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("entered_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("exited_at", models.DateTimeField(blank=True, null=True)),
                (
                    "contact",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="segment_memberships",
                        to="plunk_events.contact",
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
                    "segment",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="memberships",
                        to="plunk_events.segment",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["project", "contact"], name="plunk_membership_p_contact"),
                    models.Index(
                        fields=["project", "segment", "-entered_at"],
                        name="plunk_membership_p_entered",
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "segment", "contact"), name="plunk_membership_unique"
                    )
                ],
            },
        ),
    ]
