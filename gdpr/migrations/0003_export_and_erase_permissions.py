from django.db import migrations

OLD_CODENAME = "run_gdpr_requests"
NEW_CODENAMES = {"export_subject": "Can export a person's data", "erase_subject": "Can erase a person's data"}


def split_permission(apps, schema_editor):
    """Whoever could "export and erase" gets both new permissions; the group gets the role's name."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="gdpr", model="erasurerecord")
    new = [
        Permission.objects.get_or_create(codename=codename, content_type=content_type, defaults={"name": name})[0]
        for codename, name in NEW_CODENAMES.items()
    ]
    old = Permission.objects.filter(codename=OLD_CODENAME, content_type=content_type).first()
    if old is not None:
        for group in old.group_set.all():
            group.permissions.add(*new)
        for user in old.user_set.all():
            user.user_permissions.add(*new)
        old.delete()
    # The accounts app's roles (accounts/roles.py) keep the members of the old group.
    Group.objects.filter(name="Data officers").update(name="Data officer")


class Migration(migrations.Migration):

    dependencies = [
        ("gdpr", "0002_remote_deletion_origins"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="erasurerecord",
            options={
                "ordering": ["-performed_at"],
                "permissions": [
                    ("export_subject", "Can export a person's data"),
                    ("erase_subject", "Can erase a person's data"),
                ],
            },
        ),
        migrations.RunPython(split_permission, migrations.RunPython.noop),
    ]
