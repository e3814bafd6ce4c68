"""Two-factor set-up codes: an authenticator app is set up with one, never with the password alone."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_api_token_events'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='securityevent',
            name='action',
            field=models.CharField(choices=[('login', 'Logged in'), ('login.failed', 'Failed login'), ('login.locked_out', 'Locked out'), ('login.second_factor_failed', 'Failed second factor'), ('logout', 'Logged out'), ('sessions.ended_others', 'Logged out other sessions'), ('lockout.released', 'Lock-out released'), ('two_factor.enabled', 'Two-factor enabled'), ('two_factor.disabled', 'Two-factor turned off or reset'), ('two_factor.recovery_codes', 'Recovery codes renewed'), ('role.changed', 'Roles or permissions changed'), ('account.changed', 'Account flags changed'), ('gdpr.export', 'Personal data exported'), ('gdpr.erase', 'Personal data erased'), ('conversation.taken_over', 'Conversation taken over'), ('configuration.changed', 'Configuration changed'), ('api_token.created', 'API token created'), ('api_token.refused', 'API token for someone else refused'), ('api_token.revoked', 'API token revoked'), ('two_factor.setup_code_issued', 'Two-factor set-up code issued')], db_index=True, max_length=40),
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
    ]
