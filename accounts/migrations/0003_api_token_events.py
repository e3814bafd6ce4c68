"""The API token events of the security audit trail."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_roles'),
    ]

    operations = [
        migrations.AlterField(
            model_name='securityevent',
            name='action',
            field=models.CharField(choices=[('login', 'Logged in'), ('login.failed', 'Failed login'), ('login.locked_out', 'Locked out'), ('login.second_factor_failed', 'Failed second factor'), ('logout', 'Logged out'), ('sessions.ended_others', 'Logged out other sessions'), ('lockout.released', 'Lock-out released'), ('two_factor.enabled', 'Two-factor enabled'), ('two_factor.disabled', 'Two-factor turned off or reset'), ('two_factor.recovery_codes', 'Recovery codes renewed'), ('role.changed', 'Roles or permissions changed'), ('account.changed', 'Account flags changed'), ('gdpr.export', 'Personal data exported'), ('gdpr.erase', 'Personal data erased'), ('conversation.taken_over', 'Conversation taken over'), ('configuration.changed', 'Configuration changed'), ('api_token.created', 'API token created'), ('api_token.refused', 'API token for someone else refused'), ('api_token.revoked', 'API token revoked')], db_index=True, max_length=40),
        ),
    ]
