"""On PostgreSQL, a delivery a webhook accepts wakes the workers' recorder (services/recorder.py).

A trigger rather than a NOTIFY from the webhook: no extra round trip, and PostgreSQL delivers
the notification only if the INSERT commits. Other databases get no trigger (the webhook then
enqueues a record task).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION whatsbot_notify_accepted() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('whatsbot_accepted', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER processedmessage_accepted
    AFTER INSERT ON conversations_processedmessage
    FOR EACH ROW WHEN (NEW.pending IS NOT NULL)
    EXECUTE FUNCTION whatsbot_notify_accepted();
"""
DROP = """
DROP TRIGGER IF EXISTS processedmessage_accepted ON conversations_processedmessage;
DROP FUNCTION IF EXISTS whatsbot_notify_accepted();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_processed_pending")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
