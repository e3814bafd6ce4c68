"""An index on the number a conversation was written to: the recorder looks up whether a sender
is one of the business's own numbers (services/inbound.py), once per batch."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0009_usage_per_contact")]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(fields=["business_address"], name="conversation_business_idx"),
        ),
    ]
