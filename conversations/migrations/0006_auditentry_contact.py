import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_staff_permissions"),
        ("profiles", "0004_person_fields_on_contact"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="contact",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="audit_entries",
                to="profiles.contact",
            ),
        ),
    ]
