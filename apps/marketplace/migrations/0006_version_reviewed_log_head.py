from django.db import migrations, models


def mark_reviewed(apps, schema_editor):
    """Versions published by a staff approval were reviewed."""
    TemplateVersion = apps.get_model("marketplace", "TemplateVersion")
    TemplateVersion.objects.filter(state="published", submission__reviewer__is_staff=True).update(reviewed=True)


def measure_heads(apps, schema_editor):
    """Logs already cut: their head's length (best effort, from the marker's first place)."""
    Submission = apps.get_model("marketplace", "Submission")
    marker = "\n[... the middle of the build log was dropped ...]\n"
    for row in Submission.objects.filter(build_log__contains=marker).only("pk", "build_log"):
        head = row.build_log.partition(marker)[0]
        Submission.objects.filter(pk=row.pk).update(log_head=len(head.encode()))


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0005_marketplace")]

    operations = [
        migrations.AddField(
            model_name="templateversion", name="reviewed", field=models.BooleanField(default=False)
        ),
        migrations.AddField(model_name="submission", name="log_head", field=models.IntegerField(default=0)),
        migrations.RunPython(mark_reviewed, migrations.RunPython.noop),
        migrations.RunPython(measure_heads, migrations.RunPython.noop),
    ]
