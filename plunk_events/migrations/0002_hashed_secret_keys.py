"""Secret keys hashed at rest: ``secret_key`` becomes ``secret_key_hash`` + ``secret_key_prefix``.

Forwards, every existing secret key is replaced by its SHA-256 digest and its display prefix,
so keys in use keep working. Backwards, the plaintext cannot be recovered: every project gets a
new random secret key (the old ones stop working) and its new key must be read from the
database by whoever reverses this.
"""

import hashlib
import secrets

from django.db import migrations, models

#: ``sk_`` and the four characters after it; see plunk_events.models.secret_key_display.
DISPLAY_LENGTH = 7


def hash_secret_keys(apps, schema_editor):
    Project = apps.get_model("plunk_events", "Project")
    db = schema_editor.connection.alias
    for project in Project.objects.using(db).exclude(secret_key=None).only("pk", "secret_key"):
        key = project.secret_key
        project.secret_key_hash = hashlib.sha256(key.encode()).hexdigest()
        project.secret_key_prefix = key[:DISPLAY_LENGTH]
        project.secret_key = None  # the column goes next; no plaintext in the meantime
        project.save(update_fields=["secret_key_hash", "secret_key_prefix", "secret_key"])


def new_plaintext_keys(apps, schema_editor):
    Project = apps.get_model("plunk_events", "Project")
    db = schema_editor.connection.alias
    for project in Project.objects.using(db).only("pk"):
        project.secret_key = "sk_" + secrets.token_hex(24)
        project.save(update_fields=["secret_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("plunk_events", "0002_event_statistics_proxy"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="secret_key_hash",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="project",
            name="secret_key_prefix",
            field=models.CharField(default="", editable=False, max_length=16),
            preserve_default=False,
        ),
        # Nullable and without a default, so that the column can be emptied here and re-added
        # (empty) when the migration is reversed.
        migrations.AlterField(
            model_name="project",
            name="secret_key",
            field=models.CharField(max_length=64, null=True, unique=True),
        ),
        migrations.RunPython(hash_secret_keys, new_plaintext_keys, elidable=False),
        migrations.AlterField(
            model_name="project",
            name="secret_key_hash",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
        migrations.RemoveField(
            model_name="project",
            name="secret_key",
        ),
    ]
