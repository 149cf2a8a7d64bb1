# Code contexts (issue 25). Preview owns 0013: at merge this one depends on it instead of 0012.

import django.db.models.deletion
from django.db import migrations, models

import apps.sandboxes.models


class Migration(migrations.Migration):
    dependencies = [
        ("sandboxes", "0013_sandbox_ports"),
    ]

    operations = [
        migrations.CreateModel(
            name="CodeContext",
            fields=[
                (
                    "id",
                    models.CharField(
                        default=apps.sandboxes.models.new_context_id,
                        editable=False,
                        max_length=32,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "language",
                    models.CharField(choices=[("python", "Python"), ("javascript", "Javascript")], max_length=16),
                ),
                ("cwd", models.CharField(max_length=1024)),
                ("generation", models.PositiveIntegerField(default=1)),
                ("execution_count", models.PositiveIntegerField(default=0)),
                ("busy_until", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("last_used_at", models.DateTimeField(auto_now_add=True)),
                (
                    "sandbox",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="contexts",
                        to="sandboxes.sandbox",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
            },
        ),
    ]
