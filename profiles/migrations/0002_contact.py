from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Contact",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "phone_number",
                    models.CharField(
                        blank=True,
                        help_text="New identities with this number join.",
                        max_length=32,
                        null=True,
                        unique=True,
                    ),
                ),
                ("first_name", models.CharField(blank=True, max_length=100)),
                ("last_name", models.CharField(blank=True, max_length=100)),
                ("company", models.CharField(blank=True, max_length=200)),
                ("email", models.EmailField(blank=True, max_length=254)),
                ("field_sources", models.JSONField(blank=True, default=dict)),
                ("details_declined_at", models.DateTimeField(blank=True, null=True)),
                (
                    "opted_out_at",
                    models.DateTimeField(
                        blank=True, help_text="When the person asked for no more bot messages.", null=True
                    ),
                ),
                (
                    "opted_in_at",
                    models.DateTimeField(blank=True, help_text="When the person last asked to resume them.", null=True),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.AddField(
            model_name="clientprofile",
            name="contact",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="identities",
                to="profiles.contact",
            ),
        ),
    ]
