"""A full-text index over message text on PostgreSQL (selectors/search.py); SQLite searches
without one. The 'simple' configuration: customers write in any language, so words are not stemmed."""

from django.db import migrations

INDEX = "message_text_search_idx"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON conversations_message USING gin (to_tsvector('simple', text))"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_helpdesk")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
