from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.roles import sync_roles


def create_roles(apps, schema_editor):
    """The four role groups with their permissions (accounts/roles.py); every later `migrate`
    resets them to that table (post_migrate), which also grants permissions of newer models."""
    # Permissions are normally created after all migrations ran (post_migrate): create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("agents", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("axes", "0010_accessattemptexpiration"),
        ("conversations", "0005_staff_permissions"),
        ("gdpr", "0003_export_and_erase_permissions"),
        ("integrations", "0001_initial"),
        ("knowledge", "0001_initial"),
        ("otp_static", "0003_add_timestamps"),
        ("otp_totp", "0003_add_timestamps"),
        ("profiles", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
