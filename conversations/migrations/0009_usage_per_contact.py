"""Budgets count per contact (the person on every channel), not per channel identity: each
counter moves to its identity's contact, and counters of one contact's identities for the same
period are added up. Model replies become one row each (the sliding reply rate); a row of the
old per-minute counts still counts as that many replies at its minute's start."""

from django.db import migrations, models
from django.db.models import Q


def count_per_contact(apps, schema_editor):
    UsageWindow = apps.get_model("conversations", "UsageWindow")
    kept = {}
    for window in UsageWindow.objects.select_related("profile").order_by("pk"):
        window.contact_id = window.profile.contact_id
        key = (window.contact_id, window.kind, window.starts_at)
        if window.kind != "replies" and key in kept:
            kept[key].count += window.count
            kept[key].save(update_fields=["count"])
            window.delete()
            continue
        window.save(update_fields=["contact"])
        kept[key] = window


def forget_counters(apps, schema_editor):
    """Back to counters per identity: the current ones are dropped (budgets start afresh)."""
    apps.get_model("conversations", "UsageWindow").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0008_message_search_index"),
        ("profiles", "0004_person_fields_on_contact"),
    ]

    operations = [
        # Nullable first, so that going back can add the column again before forget_counters.
        migrations.AlterField(
            model_name="usagewindow",
            name="profile",
            field=models.ForeignKey(
                null=True, on_delete=models.deletion.CASCADE, related_name="+", to="profiles.clientprofile"
            ),
        ),
        migrations.AddField(
            model_name="usagewindow",
            name="contact",
            field=models.ForeignKey(
                null=True, db_index=False, on_delete=models.deletion.CASCADE, related_name="+", to="profiles.contact"
            ),
        ),
        migrations.RemoveConstraint(model_name="usagewindow", name="one_usage_window_per_period"),
        migrations.RunPython(count_per_contact, forget_counters, elidable=True),
        migrations.RemoveField(model_name="usagewindow", name="profile"),
        migrations.AlterField(
            model_name="usagewindow",
            name="contact",
            field=models.ForeignKey(
                db_index=False, on_delete=models.deletion.CASCADE, related_name="+", to="profiles.contact"
            ),
        ),
        migrations.AlterField(
            model_name="usagewindow",
            name="kind",
            field=models.CharField(
                choices=[
                    ("replies", "Model replies (one row each)"),
                    ("tokens", "Model tokens per day"),
                    ("notice_replies", "Notice: replies per minute"),
                    ("notice_tokens", "Notice: tokens per day"),
                    ("notice_spend", "Notice: monthly spend"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="usagewindow",
            constraint=models.UniqueConstraint(
                condition=Q(("kind", "replies"), _negated=True),
                fields=("contact", "kind", "starts_at"),
                name="one_usage_window_per_contact_period",
            ),
        ),
        migrations.AddIndex(
            model_name="usagewindow",
            index=models.Index(fields=["contact", "kind", "starts_at"], name="usage_window_lookup"),
        ),
    ]
