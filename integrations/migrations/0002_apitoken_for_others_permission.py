"""The permission to create API tokens for other staff members (the Administrator role)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='apitoken',
            options={'ordering': ['-created_at'], 'permissions': [('add_apitoken_for_others', 'Can create API tokens for other staff members')], 'verbose_name': 'API token'},
        ),
    ]
