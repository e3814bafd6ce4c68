"""The api_token.changed event of the security audit trail (an edit of a token's name or scopes)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_two_factor_setup_codes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='securityevent',
            name='action',
            field=models.CharField(choices=[('login', 'Logged in'), ('login.failed', 'Failed login'), ('login.locked_out', 'Locked out'), ('login.second_factor_failed', 'Failed second factor'), ('logout', 'Logged out'), ('sessions.ended_others', 'Logged out other sessions'), ('lockout.released', 'Lock-out released'), ('two_factor.enabled', 'Two-factor enabled'), ('two_factor.disabled', 'Two-factor turned off or reset'), ('two_factor.recovery_codes', 'Recovery codes renewed'), ('role.changed', 'Roles or permissions changed'), ('account.changed', 'Account flags changed'), ('gdpr.export', 'Personal data exported'), ('gdpr.erase', 'Personal data erased'), ('conversation.taken_over', 'Conversation taken over'), ('configuration.changed', 'Configuration changed'), ('api_token.created', 'API token created'), ('api_token.changed', 'API token changed'), ('api_token.refused', 'API token for someone else refused'), ('api_token.revoked', 'API token revoked'), ('two_factor.setup_code_issued', 'Two-factor set-up code issued')], db_index=True, max_length=40),
        ),
    ]
