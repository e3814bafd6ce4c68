from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0003_group_profiles_into_contacts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="clientprofile",
            name="contact",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="identities", to="profiles.contact"
            ),
        ),
        migrations.RemoveField(model_name="clientprofile", name="first_name"),
        migrations.RemoveField(model_name="clientprofile", name="last_name"),
        migrations.RemoveField(model_name="clientprofile", name="company"),
        migrations.RemoveField(model_name="clientprofile", name="email"),
        migrations.RemoveField(model_name="clientprofile", name="field_sources"),
        migrations.RemoveField(model_name="clientprofile", name="details_declined_at"),
        migrations.RemoveField(model_name="clientprofile", name="opted_out_at"),
        migrations.RemoveField(model_name="clientprofile", name="opted_in_at"),
        migrations.AlterModelOptions(
            name="clientprofile",
            options={"verbose_name": "channel identity", "verbose_name_plural": "channel identities"},
        ),
    ]
