"""The "Data officers" group: the only users who may export or erase a person's data."""

from django.db import migrations

GROUP = "Data officers"
CODENAME = "run_gdpr_requests"


def create_group(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    # Permissions are normally created after migrations (post_migrate); create this one now.
    content_type, _ = ContentType.objects.get_or_create(app_label="profiles", model="erasurerecord")
    permission, _ = Permission.objects.get_or_create(
        codename=CODENAME,
        content_type=content_type,
        defaults={"name": "Can export and erase a person's data (data officer)"},
    )
    # They reach the actions from the client profile list, so they may view profiles too.
    profile_type, _ = ContentType.objects.get_or_create(app_label="profiles", model="clientprofile")
    view_profiles, _ = Permission.objects.get_or_create(
        codename="view_clientprofile", content_type=profile_type, defaults={"name": "Can view client profile"}
    )
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(permission, view_profiles)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0002_gdpr_consent_and_erasure_records"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
