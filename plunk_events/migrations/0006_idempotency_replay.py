"""Idempotency-Key replay (issue 12): the request fingerprint and the stored first response."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("plunk_events", "0005_segment_membership"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencykey",
            name="request_sha256",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="idempotencykey",
            name="response_body",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="idempotencykey",
            name="response_content_type",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
    ]
