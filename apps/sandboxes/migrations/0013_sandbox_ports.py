from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sandboxes", "0012_sandbox_template_version"),
    ]

    operations = [
        migrations.AddField(
            model_name="sandbox",
            name="ports",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
