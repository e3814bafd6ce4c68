"""The accounts app's schema in one migration (squashed: no deployment had migrated the earlier
ones), and the staff roles (accounts/roles.py), once every app's models exist."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

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

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        # Every app whose permissions the roles hold.
        ("agents", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("axes", "0010_accessattemptexpiration"),
        ("conversations", "0001_initial"),
        ("gdpr", "0001_initial"),
        ("integrations", "0001_initial"),
        ("knowledge", "0001_initial"),
        ("otp_static", "0003_add_timestamps"),
        ("otp_totp", "0003_add_timestamps"),
        ("profiles", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name='SecurityEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('action', models.CharField(choices=[('login', 'Logged in'), ('login.failed', 'Failed login'), ('login.locked_out', 'Locked out'), ('login.second_factor_failed', 'Failed second factor'), ('logout', 'Logged out'), ('sessions.ended_others', 'Logged out other sessions'), ('lockout.released', 'Lock-out released'), ('two_factor.enabled', 'Two-factor enabled'), ('two_factor.disabled', 'Two-factor turned off or reset'), ('two_factor.recovery_codes', 'Recovery codes renewed'), ('role.changed', 'Roles or permissions changed'), ('account.changed', 'Account flags changed'), ('gdpr.export', 'Personal data exported'), ('gdpr.erase', 'Personal data erased'), ('conversation.taken_over', 'Conversation taken over'), ('configuration.changed', 'Configuration changed'), ('api_token.created', 'API token created'), ('api_token.changed', 'API token changed'), ('api_token.refused', 'API token for someone else refused'), ('api_token.revoked', 'API token revoked'), ('two_factor.setup_code_issued', 'Two-factor set-up code issued')], db_index=True, max_length=40)),
                ('actor_label', models.CharField(blank=True, max_length=150)),
                ('ip_address', models.GenericIPAddressField(blank=True, null=True)),
                ('target', models.CharField(blank=True, max_length=100)),
                ('detail', models.JSONField(blank=True, default=dict)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='TwoFactorSetupCode',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code_hash', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField()),
                ('issued_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
