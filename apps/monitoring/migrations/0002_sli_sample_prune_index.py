"""The pruning index on SliSample.minute had the unique constraint's name
(`monitoring_sli_sample_minute`): SQLite keeps an inline constraint's name apart from index names,
PostgreSQL makes the constraint an index of that name, so 0001 failed there. 0001 now names the
index `monitoring_sli_sample_prune`; a SQLite database migrated with the old 0001 gets its index
renamed here (SQLite has no ALTER INDEX … RENAME: dropped and made again). Nothing to do elsewhere."""

from django.db import migrations

OLD, NEW = "monitoring_sli_sample_minute", "monitoring_sli_sample_prune"


def rename_old_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = %s", [OLD])
        if cursor.fetchone() is None:
            return
        cursor.execute(f'DROP INDEX "{OLD}"')
        cursor.execute(f'CREATE INDEX IF NOT EXISTS "{NEW}" ON "monitoring_slisample" ("minute")')


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_status_slisample")]

    operations = [migrations.RunPython(rename_old_index, migrations.RunPython.noop)]
